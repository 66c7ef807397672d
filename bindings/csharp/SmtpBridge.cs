// SmtpBridge.cs: C# bindings for libsmtpbridge (C ABI version 1).
//
// A thin mirror: Client has one method per smtpb_ function, named after it
// (smtpb_config_set -> ConfigSet); JSON goes in and comes out as strings;
// a failed call throws SmtpBridgeException with the result code.
//
//     using (var client = new SmtpBridge.Client())   // in memory
//     {
//         client.ConfigSet("SMTPServer", "smtp.example.com");
//         string status = client.Send("{\"to\": [\"a@example.com\"], \"text\": \"Hi\"}");
//     }
//
// With SmtpBridge.Native.cs (the P/Invoke layer), C# 6 for Mono's mcs,
// .NET Framework 4.x and netstandard2.0: the P/Invoke layer uses [DllImport], byte[] for UTF-8 strings in and IntPtr
// for strings out, which are copied and then freed with smtpb_string_free.
// The library is loaded on first use as "smtpbridge": smtpbridge.dll on
// Windows (beside the program), libsmtpbridge.so / .dylib elsewhere (the
// loader's path, or the <dllmap> in SmtpBridge.Net.dll.config on Mono).
// Every function of the ABI is declared; one the loaded library does not
// export yet throws EntryPointNotFoundException when called.

using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

// The library version this binding was made with (the native library's
// smtpb_version() at release); the csproj does not generate these.
[assembly: System.Reflection.AssemblyVersion("1.2.0.0")]
[assembly: System.Reflection.AssemblyFileVersion("1.2.0.0")]
[assembly: System.Reflection.AssemblyInformationalVersion("1.2.0")]

namespace SmtpBridge
{
    /// <summary>The smtpb_result codes (docs/REFERENCE.md, "Result codes"). Codes are never reused; treat an unknown one as a failure.</summary>
    public static class ResultCode
    {
        public const int Ok = 0;
        public const int InvalidArgument = 1;
        public const int Config = 2;
        public const int Credentials = 3;
        public const int Connect = 4;
        public const int Tls = 5;
        public const int Auth = 6;
        public const int Rejected = 7;
        public const int Transient = 8;
        public const int Message = 9;
        public const int NotFound = 10;
        public const int Limit = 11;
        public const int Blocked = 12;
        public const int IO = 13;
        public const int Timeout = 14;
        public const int State = 15;
        public const int Busy = 16;
        public const int Internal = 99;
    }

    /// <summary>Flags of smtpb_client_open.</summary>
    [Flags]
    public enum OpenFlags : uint
    {
        /// <summary>SMTPB_OPEN_DEFAULT: resume delivery of what the spool holds.</summary>
        Default = 0,
        /// <summary>SMTPB_OPEN_PAUSED: the outbox stays paused until OutboxResume(null).</summary>
        Paused = 1,
        /// <summary>SMTPB_OPEN_SHARED: other processes of this machine may open the same data_dir.</summary>
        Shared = 2,
        /// <summary>SMTPB_OPEN_SUBMIT_ONLY: this client never delivers; it queues, reads and manages.</summary>
        SubmitOnly = 4,
    }

    /// <summary>Receives each event of a client as JSON (docs/REFERENCE.md, "Events"), on the client's event thread.</summary>
    public delegate void EventCallback(string eventJson);

    /// <summary>A log line: {"time", "level", "target", "message", "id", "profile"} (smtpb_set_log_callback).</summary>
    public delegate void LogCallback(string lineJson);

    /// <summary>
    /// A failed smtpb_ call. Message is "NAME: text", e.g. "SMTPB_ERR_CONNECT:
    /// cannot connect to ..."; LastError is the text alone (smtpb_last_error
    /// right after the call).
    /// </summary>
    public partial class SmtpBridgeException : Exception
    {
        public SmtpBridgeException(int code, string lastError, string status = null, string report = null)
            : base(Client.ResultName(code) + ": " + lastError)
        {
            Code = code;
            LastError = lastError;
            Status = status;
            Report = report;
        }

        /// <summary>The result code, one of <see cref="ResultCode"/>.</summary>
        public int Code { get; private set; }

        /// <summary>The code's name, e.g. "SMTPB_ERR_CONNECT".</summary>
        public string Name { get { return Client.ResultName(Code); } }

        /// <summary>The library's message: it names the key, field, argument, address or file at fault.</summary>
        public string LastError { get; private set; }

        /// <summary>Send: the status JSON of the failed message, when it was recorded; else null.</summary>
        public string Status { get; private set; }

        /// <summary>TestConnection: the report JSON, when the server was contacted; else null.</summary>
        public string Report { get; private set; }
    }

    /// <summary>
    /// A client of libsmtpbridge: one data directory (or memory) with its
    /// configuration, credential store, outbox and message statuses.
    /// Safe to use from many threads at once. Dispose it: Dispose (or
    /// Close) shuts it down with SMTPShutdownGraceMs and frees it; queued
    /// mail stays in the spool. Any call on a closed client throws
    /// SmtpBridgeException with ResultCode.State.
    /// </summary>
    public sealed partial class Client : IDisposable
    {
        /// <summary>The ABI version these bindings are written for.</summary>
        public const uint RequiredAbiVersion = 1;

        /// <summary>A timeout without limit (UINT32_MAX ms).</summary>
        public const uint Infinite = uint.MaxValue;

        private static readonly NativeMethods.EventFn EventThunk = OnEvent;  // never collected
        private static readonly NativeMethods.EventFn LogThunk = OnLog;  // never collected
        private readonly object logLock = new object();
        private LogCallback logReceived;
        private int logMinLevel = 3;
        private static volatile bool abiChecked;

        private readonly ClientHandle handle;
        private readonly object eventLock = new object();

        /// <summary>
        /// smtpb_client_open. dataDir: absolute path, created if missing and
        /// locked for the client's life; null = in memory. secret: master
        /// secret of the credential store; null = a key file in dataDir.
        /// Throws NotSupportedException if the library is not ABI version 1,
        /// DllNotFoundException if it cannot be loaded.
        /// </summary>
        public Client(string dataDir = null, string secret = null, OpenFlags flags = OpenFlags.Default)
        {
            CheckAbi();
            ClientHandle opened;
            int code = NativeMethods.smtpb_client_open(
                Utf8.In(dataDir, "dataDir"), Utf8.In(secret, "secret"), (uint)flags, out opened);
            Ensure.Success(code);
            handle = opened;
        }

        /// <summary>smtpb_version: the loaded library's version, e.g. "1.2.0".</summary>
        public static string Version
        {
            get { return Utf8.Copy(NativeMethods.smtpb_version()); }
        }

        /// <summary>smtpb_abi_version: the loaded library's ABI version.</summary>
        public static uint AbiVersion
        {
            get { return NativeMethods.smtpb_abi_version(); }
        }

        /// <summary>smtpb_abi_minor: 2 when the version 1.2 functions exist, 1 for a 1.1 library, 0 for a 1.0 one.</summary>
        public static uint AbiMinor
        {
            get
            {
                try { return NativeMethods.smtpb_abi_minor(); }
                catch (EntryPointNotFoundException) { return 0; }
            }
        }

        /// <summary>smtpb_result_name: "SMTPB_ERR_TLS" for 5; "SMTPB_ERR_UNKNOWN" for an unknown code.</summary>
        public static string ResultName(int code)
        {
            return Utf8.Copy(NativeMethods.smtpb_result_name(code));
        }

        private static void CheckAbi()
        {
            if (abiChecked)
                return;
            uint found;
            try
            {
                found = AbiVersion;
            }
            catch (DllNotFoundException e)
            {
                throw new DllNotFoundException(
                    "libsmtpbridge could not be loaded ([DllImport(\"smtpbridge\")]): put smtpbridge.dll, " +
                    "libsmtpbridge.so or libsmtpbridge.dylib beside the application or on the loader's path", e);
            }
            if (found != RequiredAbiVersion)
                throw new NotSupportedException(string.Format(
                    "libsmtpbridge has ABI version {0}; these bindings need {1}", found, RequiredAbiVersion));
            abiChecked = true;
        }

        // -- lifecycle --------------------------------------------------------

        /// <summary>True once the client is closed.</summary>
        public bool IsClosed
        {
            get { return handle.IsClosed; }
        }

        /// <summary>smtpb_client_shutdown: stop the client; a transaction past MAIL may finish within graceMs. Idempotent.</summary>
        public void Shutdown(uint graceMs)
        {
            Ensure.Success(NativeMethods.smtpb_client_shutdown(Handle, graceMs));
        }

        /// <summary>smtpb_client_close (as Dispose). Idempotent.</summary>
        public void Close()
        {
            Dispose();
        }

        /// <summary>smtpb_client_close: shut down with SMTPShutdownGraceMs and free; waits for calls still inside.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        // -- configuration ----------------------------------------------------

        /// <summary>smtpb_config_set: key ("Profile.Key" for another profile) = value; null = the default.</summary>
        public void ConfigSet(string key, string value)
        {
            Ensure.Success(NativeMethods.smtpb_config_set(Handle, Utf8.In(key, "key"), Utf8.In(value, "value")));
        }

        /// <summary>smtpb_config_get: the effective value of key, defaults included.</summary>
        public string ConfigGet(string key)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_config_get(Handle, Utf8.In(key, "key"), out output);
            return Ensure.Output("smtpb_config_get", code, output);
        }

        /// <summary>smtpb_config_import_keys: Key=Value lines, all or nothing.</summary>
        public void ConfigImportKeys(string lines)
        {
            Ensure.Success(NativeMethods.smtpb_config_import_keys(Handle, Utf8.In(lines, "lines")));
        }

        /// <summary>smtpb_config_load_json: replace the whole configuration.</summary>
        public void ConfigLoadJson(string json)
        {
            Ensure.Success(NativeMethods.smtpb_config_load_json(Handle, Utf8.In(json, "json")));
        }

        /// <summary>smtpb_config_export_json: the configuration as JSON, without secrets.</summary>
        public string ConfigExportJson()
        {
            IntPtr output;
            int code = NativeMethods.smtpb_config_export_json(Handle, out output);
            return Ensure.Output("smtpb_config_export_json", code, output);
        }

        // -- credentials ------------------------------------------------------

        /// <summary>smtpb_credentials_set: username and password of userId (null = shared); password may be "".</summary>
        public void CredentialsSet(string userId, string username, string password)
        {
            Ensure.Success(NativeMethods.smtpb_credentials_set(
                Handle, Utf8.In(userId, "userId"), Utf8.In(username, "username"), Utf8.In(password, "password")));
        }

        /// <summary>smtpb_credentials_set_oauth2: an access token of userId (null = shared); expiresAt in Unix seconds, 0 = unknown.</summary>
        public void CredentialsSetOAuth2(string userId, string username, string accessToken, long expiresAt = 0)
        {
            Ensure.Success(NativeMethods.smtpb_credentials_set_oauth2(
                Handle, Utf8.In(userId, "userId"), Utf8.In(username, "username"),
                Utf8.In(accessToken, "accessToken"), expiresAt));
        }

        /// <summary>smtpb_credentials_remove: forget the credential of userId (null = shared).</summary>
        public void CredentialsRemove(string userId)
        {
            Ensure.Success(NativeMethods.smtpb_credentials_remove(Handle, Utf8.In(userId, "userId")));
        }

        /// <summary>smtpb_credentials_masked: the credential of userId (null = shared) as JSON, without its secret.</summary>
        public string CredentialsMasked(string userId)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_credentials_masked(Handle, Utf8.In(userId, "userId"), out output);
            return Ensure.Output("smtpb_credentials_masked", code, output);
        }

        // -- OAuth2 done by the library (1.1) ---------------------------------

        /// <summary>
        /// smtpb_oauth2_begin: starts a sign-in of userId (null = shared) with the
        /// profile's OAuth2 settings (null = default). kind: "browser" (open
        /// authorize_url) or "device" (show verification_uri and user_code).
        /// Returns the JSON {"flow_id", "kind", "authorize_url", ...}. Needs a 1.1 library.
        /// </summary>
        public string OAuth2Begin(string profile, string userId, string kind = "browser")
        {
            IntPtr output;
            int code = NativeMethods.smtpb_oauth2_begin(
                Handle, Utf8.In(profile, "profile"), Utf8.In(userId, "userId"), Utf8.In(kind, "kind"), out output);
            return Ensure.Output("smtpb_oauth2_begin", code, output);
        }

        /// <summary>
        /// smtpb_oauth2_complete: waits up to timeoutMs for the sign-in; returns the
        /// masked credential JSON. SMTPB_ERR_TIMEOUT: not finished yet, call again.
        /// </summary>
        public string OAuth2Complete(string flowId, uint timeoutMs)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_oauth2_complete(Handle, Utf8.In(flowId, "flowId"), timeoutMs, out output);
            return Ensure.Output("smtpb_oauth2_complete", code, output);
        }

        /// <summary>smtpb_oauth2_cancel: stops a sign-in; nothing is stored.</summary>
        public void OAuth2Cancel(string flowId)
        {
            Ensure.Success(NativeMethods.smtpb_oauth2_cancel(Handle, Utf8.In(flowId, "flowId")));
        }

        /// <summary>smtpb_credentials_set_oauth2_refresh: a refresh token the host obtained itself (e.g. with MSAL); username may be "".</summary>
        public void CredentialsSetOAuth2Refresh(string userId, string username, string refreshToken)
        {
            Ensure.Success(NativeMethods.smtpb_credentials_set_oauth2_refresh(
                Handle, Utf8.In(userId, "userId"), Utf8.In(username, "username"),
                Utf8.In(refreshToken, "refreshToken")));
        }

        // -- sending ----------------------------------------------------------

        /// <summary>
        /// smtpb_send: send a message (JSON) now and wait for the outcome;
        /// returns its status JSON. On failure the exception's Status holds
        /// the failed message's status when it was recorded.
        /// </summary>
        public string Send(string messageJson)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_send(Handle, Utf8.In(messageJson, "messageJson"), out output);
            return Ensure.Output("smtpb_send", code, output, OutputOnFailure.Status);
        }

        /// <summary>smtpb_enqueue: validate a message (JSON), make it durable in the outbox; returns its id.</summary>
        public string Enqueue(string messageJson)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_enqueue(Handle, Utf8.In(messageJson, "messageJson"), out output);
            return Ensure.Output("smtpb_enqueue", code, output);
        }

        /// <summary>
        /// smtpb_render: the MIME (.eml text, CRLF line ends) the message
        /// (JSON) would be sent as, after profile choice, test mode and
        /// DKIM; nothing is sent or recorded.
        /// </summary>
        public string Render(string messageJson)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_render(Handle, Utf8.In(messageJson, "messageJson"), out output);
            return Ensure.Output("smtpb_render", code, output);
        }

        /// <summary>
        /// smtpb_validate: checks a message (JSON) and the settings it would
        /// use, sending nothing; throws SmtpBridgeException naming what is wrong.
        /// </summary>
        public void Validate(string messageJson)
        {
            Ensure.Success(NativeMethods.smtpb_validate(Handle, Utf8.In(messageJson, "messageJson")));
        }

        /// <summary>smtpb_merge: one message per recipient from a template, as one batch; returns {"batch_id", "ids", "count"}.</summary>
        public string Merge(string templateJson, string recipientsJson)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_merge(
                Handle, Utf8.In(templateJson, "templateJson"), Utf8.In(recipientsJson, "recipientsJson"), out output);
            return Ensure.Output("smtpb_merge", code, output);
        }

        /// <summary>
        /// smtpb_test_connection: connect, EHLO, TLS, AUTH, QUIT with a
        /// profile (null = the default) and userId's credentials (null =
        /// shared or none); returns the report JSON. On failure the
        /// exception's Report holds the report when the server was contacted.
        /// </summary>
        public string TestConnection(string profile = null, string userId = null)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_test_connection(
                Handle, Utf8.In(profile, "profile"), Utf8.In(userId, "userId"), out output);
            return Ensure.Output("smtpb_test_connection", code, output, OutputOnFailure.Report);
        }

        /// <summary>smtpb_transcript: the redacted dialogue of message id's attempts (JSON array), oldest first.</summary>
        public string Transcript(string id)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_transcript(Handle, Utf8.In(id, "id"), out output);
            return Ensure.Output("smtpb_transcript", code, output);
        }

        /// <summary>
        /// smtpb_probe: try host on 465 (SSL), 587 (TLS) and 25 (TLS, then
        /// plain); returns {"host", "results", "suggested"}. When nothing
        /// works the exception's Report holds the report.
        /// </summary>
        public string Probe(string host)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_probe(Handle, Utf8.In(host, "host"), out output);
            return Ensure.Output("smtpb_probe", code, output, OutputOnFailure.Report);
        }

        // -- status and outbox ------------------------------------------------

        /// <summary>smtpb_status: the status JSON of message id.</summary>
        public string Status(string id)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_status(Handle, Utf8.In(id, "id"), out output);
            return Ensure.Output("smtpb_status", code, output);
        }

        /// <summary>smtpb_batch_status: the state counts of a merge batch, as JSON.</summary>
        public string BatchStatus(string batchId)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_batch_status(Handle, Utf8.In(batchId, "batchId"), out output);
            return Ensure.Output("smtpb_batch_status", code, output);
        }

        /// <summary>smtpb_outbox_list: a JSON array of the statuses in state (null = all).</summary>
        public string OutboxList(string state = null)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_outbox_list(Handle, Utf8.In(state, "state"), out output);
            return Ensure.Output("smtpb_outbox_list", code, output);
        }

        /// <summary>smtpb_outbox_query (1.1): one page of statuses, newest first, as JSON
        /// {"items": [...], "next_cursor": "..." | null}. queryJson: {"state": [...], "batch_id",
        /// "reference", "reference_prefix", "profile", "since", "until", "limit", "cursor"}, all optional.</summary>
        public string OutboxQuery(string queryJson = "{}")
        {
            IntPtr output;
            int code = NativeMethods.smtpb_outbox_query(Handle, Utf8.In(queryJson, "queryJson"), out output);
            return Ensure.Output("smtpb_outbox_query", code, output);
        }

        /// <summary>smtpb_outbox_purge (1.1): purges final statuses created before `before` (RFC 3339 UTC)
        /// in the states statesJson lists (a JSON array; null = sent, cancelled, failed); returns {"purged": n}.</summary>
        public string OutboxPurge(string before, string statesJson = null)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_outbox_purge(Handle, Utf8.In(before, "before"), Utf8.In(statesJson, "statesJson"), out output);
            return Ensure.Output("smtpb_outbox_purge", code, output);
        }

        /// <summary>smtpb_outbox_stats: counts per state, paused profiles and send limits, as JSON.</summary>
        public string OutboxStats()
        {
            IntPtr output;
            int code = NativeMethods.smtpb_outbox_stats(Handle, out output);
            return Ensure.Output("smtpb_outbox_stats", code, output);
        }

        /// <summary>smtpb_wait: wait up to timeoutMs (Infinite = no limit) for a final state; returns the status JSON.</summary>
        public string Wait(string id, uint timeoutMs)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_wait(Handle, Utf8.In(id, "id"), timeoutMs, out output);
            return Ensure.Output("smtpb_wait", code, output);
        }

        /// <summary>smtpb_flush: wait up to timeoutMs until nothing is queued or sending.</summary>
        public void Flush(uint timeoutMs)
        {
            Ensure.Success(NativeMethods.smtpb_flush(Handle, timeoutMs));
        }

        /// <summary>smtpb_cancel: cancel a queued or deferred message.</summary>
        public void Cancel(string id)
        {
            Ensure.Success(NativeMethods.smtpb_cancel(Handle, Utf8.In(id, "id")));
        }

        /// <summary>smtpb_batch_cancel: cancel what can be; returns {"cancelled", "sending", "sent"}.</summary>
        public string BatchCancel(string batchId)
        {
            IntPtr output;
            int code = NativeMethods.smtpb_batch_cancel(Handle, Utf8.In(batchId, "batchId"), out output);
            return Ensure.Output("smtpb_batch_cancel", code, output);
        }

        /// <summary>smtpb_retry: requeue a failed message, or send a deferred one now.</summary>
        public void Retry(string id)
        {
            Ensure.Success(NativeMethods.smtpb_retry(Handle, Utf8.In(id, "id")));
        }

        /// <summary>smtpb_outbox_pause: hold delivery for profile (null = all); persisted.</summary>
        public void OutboxPause(string profile = null)
        {
            Ensure.Success(NativeMethods.smtpb_outbox_pause(Handle, Utf8.In(profile, "profile")));
        }

        /// <summary>smtpb_outbox_resume: resume delivery for profile (null = all, and an OpenFlags.Paused open).</summary>
        public void OutboxResume(string profile = null)
        {
            Ensure.Success(NativeMethods.smtpb_outbox_resume(Handle, Utf8.In(profile, "profile")));
        }

        /// <summary>smtpb_limits_reset: reset the send-limit counters of profile (null = all).</summary>
        public void LimitsReset(string profile = null)
        {
            Ensure.Success(NativeMethods.smtpb_limits_reset(Handle, Utf8.In(profile, "profile")));
        }

        // -- blacklist --------------------------------------------------------

        /// <summary>smtpb_blacklist_add: block an address, or a domain as "@example.com".</summary>
        public void BlacklistAdd(string entry)
        {
            Ensure.Success(NativeMethods.smtpb_blacklist_add(Handle, Utf8.In(entry, "entry")));
        }

        /// <summary>smtpb_blacklist_remove: unblock an entry.</summary>
        public void BlacklistRemove(string entry)
        {
            Ensure.Success(NativeMethods.smtpb_blacklist_remove(Handle, Utf8.In(entry, "entry")));
        }

        /// <summary>smtpb_blacklist_list: the blacklist as a JSON array of strings.</summary>
        public string BlacklistList()
        {
            IntPtr output;
            int code = NativeMethods.smtpb_blacklist_list(Handle, out output);
            return Ensure.Output("smtpb_blacklist_list", code, output);
        }

        // -- events -----------------------------------------------------------

        /// <summary>
        /// smtpb_set_event_callback: call callback with each event's JSON,
        /// on the client's event thread, one at a time; null stops events.
        /// When this returns, the previous callback is not running and never
        /// runs again. An exception the callback throws is caught (it must
        /// not reach the library) and written to Trace. The callback is kept
        /// alive until it is replaced or the client is closed.
        /// </summary>
        public void SetEventCallback(EventCallback callback)
        {
            SetEventHook(callback, false);
        }

        /// <summary>
        /// smtpb_set_event_callback_all: like SetEventCallback, for every
        /// message of the data_dir, also those other clients and processes
        /// queued (a data_dir opened with OpenFlags.Shared).
        /// </summary>
        public void SetEventCallbackAll(EventCallback callback)
        {
            SetEventHook(callback, true);
        }

        private void SetEventHook(EventCallback callback, bool all)
        {
            lock (eventLock)
            {
                GCHandle hook = callback != null ? GCHandle.Alloc(callback) : default(GCHandle);
                int code;
                try
                {
                    NativeMethods.EventFn thunk = callback != null ? EventThunk : null;
                    IntPtr data = callback != null ? GCHandle.ToIntPtr(hook) : IntPtr.Zero;
                    code = all
                        ? NativeMethods.smtpb_set_event_callback_all(Handle, thunk, data)
                        : NativeMethods.smtpb_set_event_callback(Handle, thunk, data);
                }
                catch
                {
                    if (hook.IsAllocated)
                        hook.Free();
                    throw;
                }
                if (code != ResultCode.Ok)
                {
                    SmtpBridgeException failure = Ensure.Failure(code);
                    if (hook.IsAllocated)
                        hook.Free();
                    throw failure;
                }
                handle.ReplaceEventHook(hook);  // the GCHandle keeps callback alive; user_data is its IntPtr
            }
        }

        // -- log lines --------------------------------------------------------

        /// <summary>
        /// smtpb_set_log_callback: call callback with each log line's JSON
        /// at or above minLevel (1 error, 2 warn, 3 info, 4 debug, 5 trace),
        /// on the client's event thread; null stops the lines. The rules of
        /// SetEventCallback apply.
        /// </summary>
        public void SetLogCallback(LogCallback callback, int minLevel = 3)
        {
            lock (logLock)
            {
                GCHandle hook = callback != null ? GCHandle.Alloc(callback) : default(GCHandle);
                int code;
                try
                {
                    code = NativeMethods.smtpb_set_log_callback(
                        Handle, callback != null ? LogThunk : null, minLevel,
                        callback != null ? GCHandle.ToIntPtr(hook) : IntPtr.Zero);
                }
                catch
                {
                    if (hook.IsAllocated)
                        hook.Free();
                    throw;
                }
                if (code != ResultCode.Ok)
                {
                    SmtpBridgeException failure = Ensure.Failure(code);
                    if (hook.IsAllocated)
                        hook.Free();
                    throw failure;
                }
                handle.ReplaceLogHook(hook);
            }
        }

        /// <summary>The lowest level LogReceived asks for (1 error … 5 trace; default 3, info).</summary>
        public int LogMinLevel
        {
            get { lock (logLock) return logMinLevel; }
            set
            {
                lock (logLock)
                {
                    logMinLevel = value;
                    if (logReceived != null)
                        SetLogCallback(RaiseLogReceived, value);
                }
            }
        }

        /// <summary>
        /// The library's log lines (JSON) at or above LogMinLevel, raised
        /// on the client's event thread; the first handler turns the lines
        /// on, removing the last turns them off.
        /// </summary>
        public event LogCallback LogReceived
        {
            add
            {
                lock (logLock)
                {
                    bool first = logReceived == null;
                    logReceived += value;
                    if (first)
                        SetLogCallback(RaiseLogReceived, logMinLevel);
                }
            }
            remove
            {
                lock (logLock)
                {
                    logReceived -= value;
                    if (logReceived == null && !handle.IsClosed)
                        SetLogCallback(null);
                }
            }
        }

        private void RaiseLogReceived(string lineJson)
        {
            // No lock: SetLogCallback holds it while it waits for this call.
            LogCallback handlers = logReceived;
            if (handlers != null)
                handlers(lineJson);
        }

        [MonoPInvokeCallback(typeof(NativeMethods.EventFn))]
        private static void OnLog(IntPtr lineJson, IntPtr userData)
        {
            try
            {
                var callback = (LogCallback)GCHandle.FromIntPtr(userData).Target;
                callback(Utf8.Copy(lineJson));
            }
            catch (Exception e)
            {
                Trace.TraceError("SmtpBridge: the log callback threw {0}", e);
            }
        }

        [MonoPInvokeCallback(typeof(NativeMethods.EventFn))]
        private static void OnEvent(IntPtr eventJson, IntPtr userData)
        {
            try
            {
                var callback = (EventCallback)GCHandle.FromIntPtr(userData).Target;
                callback(Utf8.Copy(eventJson));  // borrowed for the call: copied, not freed
            }
            catch (Exception e)
            {
                Trace.TraceError("SmtpBridge: the event callback threw {0}", e);
            }
        }

        // The native handle; SmtpBridgeException(State) once closed.
        private ClientHandle Handle
        {
            get
            {
                if (handle.IsClosed)
                    throw new SmtpBridgeException(ResultCode.State, "the client is closed");
                return handle;
            }
        }
    }
}
