// SmtpBridgeTests: exercises SmtpBridge.Client against a loopback SMTP server
// without TLS or AUTH (e.g. examples/smtp_server.py). Sends exactly one mail.
//
//   mcs -out:/tmp/t.exe bindings/csharp/SmtpBridge.cs bindings/csharp/SmtpBridge.Native.cs \
//       bindings/csharp/tests/SmtpBridgeTests.cs
//   LD_LIBRARY_PATH=target/release mono /tmp/t.exe PORT CLOSED_PORT   (CLOSED_PORT: nothing listens there)
//
// Exit code 0 when every check passes.

using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.CompilerServices;
using System.Threading;
using SmtpBridge;

internal static class SmtpBridgeTests
{
    private static int failures;

    private static void Check(bool condition, string what, [CallerLineNumber] int line = 0)
    {
        if (!condition)
        {
            failures++;
            Console.Error.WriteLine("SmtpBridgeTests.cs:{0}: FAILED: {1}", line, what);
        }
    }

    // Runs action, which must throw SmtpBridgeException with code; returns it (or null).
    private static SmtpBridgeException Expect(int code, Action action, [CallerLineNumber] int line = 0)
    {
        try
        {
            action();
        }
        catch (SmtpBridgeException e)
        {
            if (e.Code != code || e.Name != Client.ResultName(code) || !e.Message.StartsWith(e.Name + ": "))
            {
                failures++;
                Console.Error.WriteLine("SmtpBridgeTests.cs:{0}: FAILED: expected {1}, got {2}",
                    line, Client.ResultName(code), e.Message);
            }
            return e;
        }
        failures++;
        Console.Error.WriteLine("SmtpBridgeTests.cs:{0}: FAILED: expected {1}, nothing thrown", line, Client.ResultName(code));
        return null;
    }

    // The string value of a top-level field of compact JSON ("" if absent).
    private static string Field(string json, string name)
    {
        string key = "\"" + name + "\":\"";
        int at = json.IndexOf(key, StringComparison.Ordinal);
        if (at < 0)
            return "";
        at += key.Length;
        return json.Substring(at, json.IndexOf('"', at) - at);
    }

    private static void TestLibrary()
    {
        Check(Client.AbiVersion == Client.RequiredAbiVersion, "AbiVersion == 1");
        Check(Client.AbiMinor >= 1, "AbiMinor >= 1");
        Check(Client.Version.Split('.').Length == 3, "Version looks like x.y.z: " + Client.Version);
        Check(Client.ResultName(ResultCode.Tls) == "SMTPB_ERR_TLS", "ResultName(5)");
        Check(Client.ResultName(ResultCode.Internal) == "SMTPB_ERR_INTERNAL", "ResultName(99)");
        Check(Client.ResultName(12345) == "SMTPB_ERR_UNKNOWN", "ResultName(unknown)");
    }

    private static void TestLimits(Client client)
    {
        client.ConfigSet("SMTPSendLimit", "100");
        client.ConfigSet("SMTPSendLimitPeriod", "day");
        client.LimitsReset("default");  // profile names match in any case
        client.LimitsReset();  // every profile
        Expect(ResultCode.NotFound, () => client.LimitsReset("NoSuchProfile"));
        client.ConfigSet("SMTPSendLimit", null);
        client.ConfigSet("SMTPSendLimitPeriod", null);
    }

    private static void TestConfig(Client client, string port, string closedPort)
    {
        client.ConfigSet("SMTPServer", "127.0.0.1");
        client.ConfigSet("SMTPServerPort", port);
        client.ConfigSet("smtpauthentication", "none");  // keys and values match in any case
        Check(client.ConfigGet("SMTPServer") == "127.0.0.1", "ConfigGet SMTPServer");
        Check(client.ConfigGet("SMTPServerPort") == port, "ConfigGet SMTPServerPort");
        Check(client.ConfigGet("SMTPConnectionTimeout") == "30000", "a default");
        client.ConfigSet("SMTPConnectionTimeout", "5000");
        Check(client.ConfigGet("SMTPConnectionTimeout") == "5000", "ConfigSet SMTPConnectionTimeout");
        client.ConfigSet("SMTPConnectionTimeout", null);  // NULL: back to the default
        Check(client.ConfigGet("SMTPConnectionTimeout") == "30000", "ConfigSet null restores the default");

        const string name = "Jürgen Müller-Łukasz 🙂";  // UTF-8 in and out, astral plane included
        client.ConfigSet("SMTPSenderName", name);
        Check(client.ConfigGet("SMTPSenderName") == name, "non-ASCII round trip");

        client.ConfigImportKeys("; a host's key table\r\nSMTPSenderEmail=anna@firm.example\r\n\r\n" +
                                "Dead.SMTPServer=127.0.0.1\r\nDead.SMTPServerPort=" + closedPort + "\r\nDead.SMTPAuthentication=None\r\n");
        Check(client.ConfigGet("SMTPSenderEmail") == "anna@firm.example", "ConfigImportKeys");
        Check(client.ConfigGet("dead.smtpserverport") == closedPort, "ConfigImportKeys: a profile");

        var e = Expect(ResultCode.Config, () => client.ConfigSet("SMTPNoSuchKey", "1"));
        Check(e != null && e.LastError.Contains("SMTPNoSuchKey"), "the message names the key");
        Expect(ResultCode.Config, () => client.ConfigGet("SMTPPassword"));
        Expect(ResultCode.Config, () => client.ConfigImportKeys("SMTPHeloName=a\nsmtpheloname=b\n"));
        Check(client.ConfigGet("SMTPHeloName") != "a", "ConfigImportKeys is all or nothing");
        Expect(ResultCode.InvalidArgument, () => client.ConfigLoadJson("{\"profiles\": ["));
        Expect(ResultCode.InvalidArgument, () => client.ConfigSet("SMTPServer\0x", "h"));
        Expect(ResultCode.InvalidArgument, () => client.ConfigSet("SMTPServer", "bad \ud800 surrogate"));

        string exported = client.ConfigExportJson();
        Check(exported.Contains("\"profiles\"") && exported.Contains("Dead"), "ConfigExportJson: " + exported);
        using (var other = new Client())
        {
            other.ConfigLoadJson(exported);
            Check(other.ConfigExportJson() == exported, "export, load, export: the same");
        }
    }

    private static void TestCredentials(Client client)
    {
        client.CredentialsSet(null, "office@firm.example", "s3cret-password");
        string shared = client.CredentialsMasked(null);
        Check(shared.Contains("office@firm.example") && Field(shared, "kind") == "password", "CredentialsMasked: " + shared);
        Check(!shared.Contains("s3cret-password"), "the password stays secret");
        client.CredentialsRemove(null);
        Expect(ResultCode.NotFound, () => client.CredentialsMasked(null));

        client.CredentialsSetOAuth2("emp-42", "anna@firm.example", "ya29.token-value", 4102444800);
        string oauth = client.CredentialsMasked("emp-42");
        Check(Field(oauth, "kind") == "oauth2" && !oauth.Contains("ya29.token-value"), "OAuth2 masked: " + oauth);
        client.CredentialsRemove("emp-42");
        Expect(ResultCode.NotFound, () => client.CredentialsRemove("emp-42"));
        Expect(ResultCode.InvalidArgument, () => client.CredentialsSet("emp-1", "u", null));
    }

    private static void TestBlacklist(Client client)
    {
        client.BlacklistAdd("Gone@Example.com");
        client.BlacklistAdd("@blocked.example");
        string list = client.BlacklistList();
        Check(list.Contains("\"gone@example.com\"") && list.Contains("\"@blocked.example\""), "BlacklistList: " + list);
        var e = Expect(ResultCode.Blocked,
            () => client.Send("{\"to\": [\"x@blocked.example\"], \"subject\": \"s\", \"text\": \"t\"}"));
        Check(e != null && e.Status == null, "BLOCKED records nothing");
        client.BlacklistRemove("gone@example.com");
        client.BlacklistRemove("@blocked.example");
        Check(client.BlacklistList() == "[]", "BlacklistList empty");
        Expect(ResultCode.NotFound, () => client.BlacklistRemove("@blocked.example"));
    }

    private static void TestSend(Client client, string attachment)
    {
        string report = client.TestConnection();
        Check(report.Contains("\"ok\":true") && Field(report, "stage") == "done", "TestConnection: " + report);

        string message = "{\"to\": [\"client@example.com\"], \"subject\": \"C# binding test\"," +
                         " \"html\": \"<p>Grüße from <b>C#</b></p>\", \"reference\": \"bindings/csharp\"," +
                         " \"attachments\": [{\"path\": \"" + attachment.Replace("\\", "\\\\") + "\"}]}";
        string sent = client.Send(message);
        Check(Field(sent, "state") == "sent" && Field(sent, "reference") == "bindings/csharp", "Send: " + sent);
        string id = Field(sent, "id");
        Check(id.Length == 26, "a ULID id");
        string again = client.Status(id);
        Check(Field(again, "id") == id && Field(again, "state") == "sent", "Status: " + again);
        Expect(ResultCode.NotFound, () => client.Status("01ARZ3NDEKTSV4RRFFQ69G5FAV"));

        // Errors before the message is recorded carry no status...
        var e = Expect(ResultCode.Message,
            () => client.Send("{\"to\": [\"a@example.com\"], \"text\": \"t\", \"attachments\": [{\"path\": \"relative.pdf\"}]}"));
        Check(e != null && e.Status == null && e.LastError.Contains("relative.pdf"), "MESSAGE names the path");
        Expect(ResultCode.InvalidArgument, () => client.Send("{\"to\": [\"a@example.com\"], \"txet\": \"typo\"}"));

        // ...errors from the server's side carry the failed message's status.
        e = Expect(ResultCode.Connect,
            () => client.Send("{\"profile\": \"Dead\", \"from\": \"anna@firm.example\", \"to\": [\"a@example.com\"], \"text\": \"t\"}"));
        Check(e != null && e.Status != null && Field(e.Status, "state") == "failed", "CONNECT carries the status");
        Check(e != null && e.Status != null && client.Status(Field(e.Status, "id")) == e.Status, "the failed message is recorded");
        e = Expect(ResultCode.Connect, () => client.TestConnection("Dead"));
        Check(e != null && e.Report != null && e.Report.Contains("\"ok\":false") && e.Status == null, "a failed report");
        e = Expect(ResultCode.NotFound, () => client.TestConnection("NoSuchProfile"));
        Check(e != null && e.Report == null, "no report for an unknown profile");
    }

    private static void TestLifecycle(string dataDir)
    {
        var first = new Client(dataDir, "master secret");
        first.ConfigSet("SMTPServer", "smtp.example.com");
        first.CredentialsSet(null, "office@firm.example", "app-password");
        var busy = Expect(ResultCode.Busy, () => new Client(dataDir, "master secret").Dispose());
        Check(busy != null && busy.LastError.Length > 0, "BUSY says who holds it");
        Expect(ResultCode.InvalidArgument, () => new Client("relative/dir").Dispose());
        Expect(ResultCode.InvalidArgument, () => new Client(null, null, (OpenFlags)0x80).Dispose());

        first.Shutdown(1000);
        first.Shutdown(1000);  // idempotent
        Expect(ResultCode.State, () => first.ConfigGet("SMTPServer"));
        Check(!first.IsClosed, "shut down, not closed");
        first.Dispose();
        first.Close();  // idempotent
        Check(first.IsClosed, "IsClosed");
        Expect(ResultCode.State, () => first.BlacklistList());

        using (var reopened = new Client(dataDir, "master secret", OpenFlags.Paused))
        {
            Check(reopened.ConfigGet("SMTPServer") == "smtp.example.com", "the configuration persisted");
            Check(reopened.CredentialsMasked(null).Contains("office@firm.example"), "the credential persisted");
        }
        Expect(ResultCode.Credentials, () => new Client(dataDir, "wrong secret").Dispose());
    }

    // Events collected from a callback, to be waited for.
    private sealed class EventLog
    {
        private readonly List<string> events = new List<string>();

        public void Add(string json)
        {
            lock (events)
            {
                events.Add(json);
                Monitor.PulseAll(events);
            }
        }

        // Waits up to 5 s for an event with this id and state.
        public bool WaitFor(string id, string state)
        {
            DateTime end = DateTime.UtcNow.AddSeconds(5);
            lock (events)
            {
                while (!events.Exists(e => Field(e, "id") == id && Field(e, "state") == state))
                {
                    TimeSpan left = end - DateTime.UtcNow;
                    if (left <= TimeSpan.Zero)
                        return false;
                    Monitor.Wait(events, left);
                }
                return true;
            }
        }
    }

    // The outbox, merge and events, without delivering anything: everything is paused, then cancelled.
    private static void TestDiagnostics(Client client)
    {
        var lines = new List<string>();
        var got = new ManualResetEvent(false);
        string wanted = null;
        LogCallback handler = line =>
        {
            lock (lines)
            {
                lines.Add(line);
                if (wanted != null && line.Contains(wanted))
                    got.Set();
            }
        };
        client.LogMinLevel = 4;
        client.LogReceived += handler;
        var e = Expect(ResultCode.Connect,
            () => client.Send("{\"profile\": \"Dead\", \"from\": \"anna@firm.example\", \"to\": [\"a@example.com\"], \"text\": \"t\"}"));
        Check(e != null && e.Status != null && e.Status.Contains("connection_refused"), "the status carries advice");
        Check(e != null && e.LastError.Contains("Advice (connection_refused)"), "the error text carries advice");
        string id = e != null && e.Status != null ? Field(e.Status, "id") : "";
        lock (lines)
        {
            wanted = id;
            foreach (string line in lines)
                if (line.Contains(id))
                    got.Set();
        }
        Check(got.WaitOne(5000), "LogReceived: a line about the failed message");
        client.LogReceived -= handler;
        string transcript = client.Transcript(id);
        Check(transcript.Contains("\"attempt\":1") && transcript.Contains("\"dir\":\"*\""), "Transcript: " + transcript);
        Expect(ResultCode.NotFound, () => client.Transcript("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        Expect(ResultCode.InvalidArgument, () => client.Probe("not a host"));
    }

    private static void TestOutbox(Client client, string attachment)
    {
        var events = new EventLog();
        client.SetEventCallback(events.Add);
        GC.Collect();  // the callback is kept alive by the client, not by this method
        GC.WaitForPendingFinalizers();

        client.OutboxPause();
        Check(client.OutboxStats().Contains("\"paused\":[\"*\"]"), "OutboxStats: paused");
        string id = client.Enqueue("{\"to\": [\"queued@example.com\"], \"text\": \"never sent\"," +
                                   " \"attachments\": [{\"path\": \"" + attachment.Replace("\\", "\\\\") + "\"}]}");
        Check(id.Length == 26, "Enqueue returns an id");
        Check(client.OutboxList("queued").Contains(id) && client.OutboxList().Contains(id), "OutboxList");
        Check(Field(client.Status(id), "state") == "queued", "queued while paused");
        Expect(ResultCode.Timeout, () => client.Wait(id, 0));
        client.Flush(1000);  // paused mail does not hold a flush
        client.Cancel(id);
        Check(Field(client.Wait(id, Client.Infinite), "state") == "cancelled", "Wait: cancelled");
        Check(events.WaitFor(id, "queued") && events.WaitFor(id, "cancelled"), "events: queued, cancelled");
        Expect(ResultCode.State, () => client.Cancel(id));
        Expect(ResultCode.State, () => client.Retry(id));
        Expect(ResultCode.NotFound, () => client.Retry("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        // A merge: two messages in one batch, cancelled as a batch.
        string batch = client.Merge("{\"subject\": \"Hello {{Name}}\", \"text\": \"Dear {{Name}}\"}",
            "[{\"email\": \"a@example.com\", \"fields\": {\"Name\": \"Ä\"}}," +
            " {\"email\": \"b@example.com\", \"fields\": {\"Name\": \"B\"}}]");
        string batchId = Field(batch, "batch_id");
        Check(batchId.Length == 26 && batch.Contains("\"count\":2"), "Merge: " + batch);
        Check(client.BatchStatus(batchId).Contains("\"queued\":2"), "BatchStatus: queued");
        Check(client.BatchCancel(batchId).Contains("\"cancelled\":2"), "BatchCancel");
        Check(client.BatchStatus(batchId).Contains("\"cancelled\":2"), "BatchStatus: cancelled");
        var e = Expect(ResultCode.Message, () => client.Merge("{\"subject\": \"{{Missing}}\", \"text\": \"t\"}",
                                                              "[{\"email\": \"a@example.com\"}]"));
        Check(e != null && e.LastError.Contains("Missing"), "MESSAGE names the field");
        Expect(ResultCode.NotFound, () => client.BatchStatus("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        Expect(ResultCode.NotFound, () => client.BatchCancel("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        Expect(ResultCode.InvalidArgument, () => client.OutboxList("bogus"));
        Expect(ResultCode.NotFound, () => client.OutboxPause("NoSuchProfile"));
        Expect(ResultCode.Message, () => client.Enqueue("{\"to\": [], \"text\": \"t\"}"));
        client.OutboxResume();
        Check(client.OutboxStats().Contains("\"paused\":[]"), "OutboxStats: resumed");
        client.SetEventCallback(null);
    }

    // A callback that replaces itself, one that throws, one that closes its own client.
    private static void TestCallbackReentry()
    {
        const string message = "{\"to\": [\"a@example.com\"], \"from\": \"anna@firm.example\", \"text\": \"t\"}";
        var replaced = new ManualResetEvent(false);
        var threw = new ManualResetEvent(false);
        var closed = new ManualResetEvent(false);
        var client = new Client(null, null, OpenFlags.Paused);  // nothing is delivered
        client.ConfigSet("SMTPServer", "127.0.0.1");
        client.SetEventCallback(json =>
        {
            client.SetEventCallback(again =>
            {
                threw.Set();
                throw new InvalidOperationException("caught before it reaches the library");
            });
            replaced.Set();
        });
        client.Enqueue(message);
        Check(replaced.WaitOne(5000), "a callback replaced itself");
        client.Enqueue(message);
        Check(threw.WaitOne(5000), "a callback threw");
        client.SetEventCallback(json =>
        {
            client.Dispose();  // deferred until this callback returns
            closed.Set();
        });
        client.Enqueue(message);
        Check(closed.WaitOne(5000), "a callback closed its client");
        Check(client.IsClosed, "closed from inside its callback");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void LeaveUndisposed()
    {
        var client = new Client();
        client.ConfigSet("SMTPServer", "127.0.0.1");
        client.SetEventCallback(json => { });
    }

    private static int Main(string[] args)
    {
        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: SmtpBridgeTests.exe PORT CLOSED_PORT");  // CLOSED_PORT: nothing listens there
            return 2;
        }
        string scratch = Path.Combine(Path.GetTempPath(), "smtpbridge-cs-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(scratch);
        string attachment = Path.Combine(scratch, "Rechnung Ä-1.txt");  // a non-ASCII path
        File.WriteAllText(attachment, "A note from the C# binding test.\n");
        try
        {
            TestLibrary();
            using (var client = new Client())
            {
                TestConfig(client, args[0], args[1]);
                TestCredentials(client);
                TestBlacklist(client);
                TestLimits(client);
                TestSend(client, attachment);
                TestDiagnostics(client);
                TestOutbox(client, attachment);
            }
            TestCallbackReentry();
            TestLifecycle(Path.Combine(scratch, "data"));
            LeaveUndisposed();
            GC.Collect();  // the finalizer of an undisposed client closes it
            GC.WaitForPendingFinalizers();
        }
        catch (Exception e)
        {
            failures++;
            Console.Error.WriteLine("FAILED: unexpected exception: " + e);
        }
        finally
        {
            Directory.Delete(scratch, true);
        }
        if (failures != 0)
        {
            Console.Error.WriteLine("{0} check(s) failed", failures);
            return 1;
        }
        Console.WriteLine("SmtpBridgeTests: all checks passed (libsmtpbridge {0})", Client.Version);
        return 0;
    }
}
