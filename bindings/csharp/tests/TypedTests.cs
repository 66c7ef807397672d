// TypedTests: the typed layer (SmtpBridge.Typed.cs) against a loopback SMTP
// server that refuses RCPT gone@example.com; tests/test_csharp.py starts it,
// runs this program and checks what the server received.
//
//   mcs -r:System.Runtime.Serialization -out:t.exe bindings/csharp/SmtpBridge.cs \
//       bindings/csharp/SmtpBridge.Native.cs bindings/csharp/SmtpBridge.Typed.cs bindings/csharp/tests/TypedTests.cs
//   LD_LIBRARY_PATH=target/release mono t.exe PORT CLOSED_PORT WORKDIR
//
// WORKDIR holds "C:\docs\inv.pdf" (a file whose name is a Windows path).
// Exit code 0 when every check passes. Sends 7 messages.

using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;
using SmtpBridge;

internal static class TypedTests
{
    private static int failures;

    private static void Check(bool condition, string what, [CallerLineNumber] int line = 0)
    {
        if (!condition)
        {
            failures++;
            Console.Error.WriteLine("TypedTests.cs:{0}: FAILED: {1}", line, what);
        }
    }

    private static SmtpBridgeException Expect(int code, Action action, [CallerLineNumber] int line = 0)
    {
        try
        {
            action();
        }
        catch (SmtpBridgeException e)
        {
            Check(e.Code == code, "expected " + Client.ResultName(code) + ", got " + e.Message, line);
            return e;
        }
        catch (AggregateException e)
        {
            var inner = e.InnerException as SmtpBridgeException;
            Check(inner != null && inner.Code == code, "expected " + Client.ResultName(code) + ", got " + e.InnerException, line);
            return inner;
        }
        Check(false, "expected " + Client.ResultName(code) + ", nothing thrown", line);
        return null;
    }

    public const string Text = "Line one\r\nLine two\n\tTabbed \"quoted\" back\\slash C:\\docs\\inv.pdf Ä €";

    private static void TestSendTyped(Client client, string workDir)
    {
        var message = new Message
        {
            From = new Address("anna@firm.example", "Anna \"The\" Smith"),
            Subject = "Typed HTML",
            Html = "<p>Dear client,</p><p><img src=\"cid:logo\"></p>",
            Text = Text,
            Reference = "CL-1001/DOC-7",
            Archive = true,
        };
        message.To.Add(new Address("client@example.com", "Client, Main"));
        message.Cc.Add("copy@example.com");
        message.Bcc.Add("hidden@example.com");
        message.Headers["X-Practice-Ref"] = "CL-1001";
        message.Attachments.Add(Path.Combine(workDir, "C:\\docs\\inv.pdf"), "Invoice.pdf", "application/pdf");
        message.Attachments.Add(Encoding.UTF8.GetBytes("a note\n"), "note.txt");
        message.Inline.Add(new byte[] { 0x89, 0x50, 0x4e, 0x47 }, "logo.png", "logo", "image/png");
        Check(message.ToJson().Contains("\"Line one\\r\\nLine two\\n\\t"), "line breaks escaped: " + message.ToJson());

        MessageStatus status = client.Send(message);
        Check(status.State == MessageState.Sent && status.IsFinal, "Sent: " + status.StateName);
        Check(status.Id.Length == 26 && status.MessageId.Contains(status.Id), "id and Message-ID");
        Check(status.Reference == "CL-1001/DOC-7", "reference");
        Check(status.Recipients.Count == 3 && status.Rejected.Count == 0, "3 recipients, none rejected");
        Check(status.SmtpCode == 250 && status.ErrorCode == ResultCode.Ok && status.Error == null, "250, no error");
        Check(status.CreatedAt.HasValue && status.SentAt.HasValue && status.SentAt.Value.Kind == DateTimeKind.Utc, "times");
        Check(status.Archive != null && File.Exists(status.Archive.Eml), "archived .eml");
        Check(client.GetStatus(status.Id).State == MessageState.Sent, "GetStatus");
    }

    private static void TestRejected(Client client)
    {
        var message = new Message { Subject = "Partial", Text = "one of two" };
        message.To.Add("ok@example.com");
        message.To.Add("gone@example.com");
        MessageStatus status = client.Send(message);
        Check(status.State == MessageState.Sent && status.Partial, "partial send");
        Check(status.Rejected.Count == 1, "one rejected");
        if (status.Rejected.Count == 1)
        {
            RejectedRecipient r = status.Rejected[0];
            Check(r.Address == "gone@example.com" && r.SmtpCode == 550 && r.EnhancedCode == "5.1.1", "rejected: " + r.Address);
            Check(r.SmtpResponse.Contains("no such user"), "rejected response");
        }
    }

    private static void TestIdempotencyAndFailure(Client client)
    {
        var message = new Message { Subject = "Once", Text = "only once", IdempotencyKey = "DOC-7-send-1" };
        message.To.Add("client@example.com");
        string first = client.Send(message).Id;
        Check(client.Send(message).Id == first, "the same key returns the first message");

        var failing = new Message { Profile = "Closed", Subject = "Never", Text = "no server" };
        failing.To.Add("client@example.com");
        SmtpBridgeException e = Expect(ResultCode.Connect, () => client.Send(failing));
        if (e != null)
        {
            MessageStatus status = e.MessageStatus;
            Check(status != null && status.State == MessageState.Failed && status.ErrorCode == ResultCode.Connect,
                "the exception carries the failed status");
            Check(e.TestReport == null, "no report on a send");
        }
        var empty = new Message { Text = "nobody" };
        Expect(ResultCode.Message, () => client.Send(empty));
    }

    private static void TestRenderAndValidate(Client client)
    {
        var message = new Message { Subject = "Rendered, not sent", Text = "looked at" };
        message.To.Add(new Address("h@example.com", "Müller, Hans"));
        string eml = client.Render(message);
        Check(eml.Contains("Subject: Rendered, not sent\r\n"), "rendered subject: " + eml);
        Check(eml.Contains("<h@example.com>"), "rendered recipient");
        client.Validate(message);
        // The JSON layer takes a list typed as in Outlook.
        string typed = client.Render("{\"to\": \"Müller, Hans <h@example.com>; second@example.com\", "
            + "\"subject\": \"typed\", \"text\": \"x\"}");
        Check(typed.Contains("<h@example.com>") && typed.Contains("second@example.com"), "typed list: " + typed);
        var empty = new Message { Text = "nobody" };
        Expect(ResultCode.Message, () => client.Validate(empty));
        Expect(ResultCode.Message, () => client.Render(empty));
    }

    private static void TestAsyncAndEvents(Client client)
    {
        int mainThread = Thread.CurrentThread.ManagedThreadId;
        var seen = new List<MessageEvent>();
        var threads = new List<int>();
        EventHandler<MessageEventArgs> handler = (sender, args) =>
        {
            lock (seen)
            {
                seen.Add(args.Event);
                threads.Add(Thread.CurrentThread.ManagedThreadId);
            }
        };
        client.MessageChanged += handler;

        var message = new Message { Subject = "Async", Text = "sent by SendAsync" };
        message.To.Add("client@example.com");
        MessageStatus status = client.SendAsync(message).Result;
        Check(status.State == MessageState.Sent, "SendAsync: " + status.StateName);

        var failing = new Message { Profile = "Closed", Subject = "Never", Text = "x" };
        failing.To.Add("client@example.com");
        SmtpBridgeException e = Expect(ResultCode.Connect, () => client.SendAsync(failing).Wait());
        Check(e != null && e.MessageStatus.State == MessageState.Failed, "SendAsync faults with the typed status");

        var queued = new Message { Subject = "Queued", Text = "sent from the outbox", Reference = "Q-1" };
        queued.To.Add("client@example.com");
        string id = client.Enqueue(queued);
        MessageStatus done = client.WaitAsync(id, 20000).Result;
        Check(done.State == MessageState.Sent && done.Id == id, "WaitAsync: " + done.StateName);
        Expect(ResultCode.NotFound, () => client.WaitAsync("01JD0000000000000000000000", 0).Wait());

        // Events are the news and may come after the status says sent.
        bool queuedSent = false;
        for (int i = 0; i < 200 && !queuedSent; i++)
        {
            lock (seen)
                queuedSent = seen.Exists(ev => ev.Id == id && ev.State == MessageState.Sent && ev.Reference == "Q-1");
            if (!queuedSent)
                Thread.Sleep(50);
        }
        Check(queuedSent, "MessageChanged: the queued message's Sent event");
        lock (seen)
        {
            Check(threads.TrueForAll(t => t != mainThread), "events are raised on the event thread");
            Check(seen.TrueForAll(ev => ev.Time.HasValue && ev.Seq > 0), "event times and seq");
        }
        client.MessageChanged -= handler;
        int count;
        lock (seen)
            count = seen.Count;
        var after = new Message { Subject = "Quiet", Text = "no handler" };
        after.To.Add("nobody@example.com");
        after.Profile = "Closed";
        Expect(ResultCode.Connect, () => client.Send(after));
        Thread.Sleep(300);
        lock (seen)
            Check(seen.Count == count, "no event after the handler was removed");
    }

    private static void TestMergeAndOutbox(Client client)
    {
        var template = new Message { Subject = "Invoice {{Ref}}", Text = "Dear {{Name}},\nyour invoice {{Ref}}." };
        var recipients = new List<MergeRecipient>();
        for (int i = 1; i <= 2; i++)
        {
            var r = new MergeRecipient("m" + i + "@example.com", "Merge " + i) { Reference = "M-" + i };
            r.Fields["Name"] = "Client " + i;
            r.Fields["Ref"] = "INV-" + i;
            recipients.Add(r);
        }
        BatchResult batch = client.Merge(template, recipients);
        Check(batch.Count == 2 && batch.Ids.Count == 2 && batch.BatchId.Length == 26, "BatchResult");
        foreach (string id in batch.Ids)
            Check(client.WaitFor(id, 20000).State == MessageState.Sent, "merged message sent");
        List<MessageStatus> sent = client.GetOutbox(MessageState.Sent);
        Check(sent.Exists(s => s.Id == batch.Ids[0] && s.BatchId == batch.BatchId), "GetOutbox(Sent) lists the batch");
        Check(client.GetOutbox(MessageState.Failed).TrueForAll(s => s.State == MessageState.Failed), "GetOutbox(Failed)");
    }

    private static void TestReports(Client client)
    {
        TestReport report = client.Test();
        Check(report.Ok && report.Stage == "done" && report.ErrorCode == 0, "Test: " + report.Stage);
        Check(report.Capabilities.Count > 0 && report.Tls == null, "capabilities, no TLS");
        SmtpBridgeException e = Expect(ResultCode.Connect, () => client.Test("Closed"));
        if (e != null)
        {
            TestReport failed = e.TestReport;
            Check(failed != null && !failed.Ok && failed.Stage == "connect" && failed.ErrorCode == ResultCode.Connect,
                "the exception carries the typed report");
        }
    }

    private static int Main(string[] args)
    {
        if (args.Length != 3)
        {
            Console.Error.WriteLine("usage: TypedTests.exe PORT CLOSED_PORT WORKDIR");
            return 2;
        }
        using (var client = new Client())
        {
            client.ConfigSet("SMTPServer", "127.0.0.1");
            client.ConfigSet("SMTPServerPort", args[0]);
            client.ConfigSet("SMTPAuthentication", "None");
            client.ConfigSet("SMTPSenderEmail", "anna@firm.example");
            client.ConfigSet("SMTPArchiveDir", Path.Combine(args[2], "archive"));
            client.ConfigSet("Closed.SMTPServer", "127.0.0.1");
            client.ConfigSet("Closed.SMTPServerPort", args[1]);
            client.ConfigSet("Closed.SMTPAuthentication", "None");
            client.ConfigSet("Closed.SMTPSenderEmail", "anna@firm.example");
            client.ConfigSet("Closed.SMTPConnectionTimeout", "3000");
            TestSendTyped(client, args[2]);
            TestRejected(client);
            TestIdempotencyAndFailure(client);
            TestRenderAndValidate(client);
            TestAsyncAndEvents(client);
            TestMergeAndOutbox(client);
            TestReports(client);
        }
        if (failures > 0)
        {
            Console.Error.WriteLine("TypedTests: {0} check(s) FAILED", failures);
            return 1;
        }
        Console.WriteLine("TypedTests: all checks passed");
        return 0;
    }
}
