// SmtpBridge.Native.cs: the P/Invoke layer under SmtpBridge.cs — the
// declarations of the C functions (NativeMethods), the client's SafeHandle,
// UTF-8 in and out, and Ensure, which turns a result code and
// smtpb_last_error() into SmtpBridgeException. Compiled with SmtpBridge.cs
// (mcs SmtpBridge.cs SmtpBridge.Native.cs ...); C# 6, like it.

using System;
using System.Runtime.InteropServices;
using System.Text;

namespace SmtpBridge
{
    /// <summary>An smtpb_client *; releasing it calls smtpb_client_close.</summary>
    internal sealed class ClientHandle : SafeHandle
    {
        // The GCHandle passed as user_data of the event callback; freed only
        // once the library can no longer call it (replaced, or closed).
        private GCHandle eventHook;
        private GCHandle logHook;

        private ClientHandle()
            : base(IntPtr.Zero, true)
        {
        }

        public override bool IsInvalid
        {
            get { return handle == IntPtr.Zero; }
        }

        internal void ReplaceLogHook(GCHandle hook)
        {
            if (logHook.IsAllocated)
                logHook.Free();
            logHook = hook;
        }

        internal void ReplaceEventHook(GCHandle hook)
        {
            if (eventHook.IsAllocated)
                eventHook.Free();
            eventHook = hook;
        }

        protected override bool ReleaseHandle()
        {
            NativeMethods.smtpb_client_close(handle);
            if (eventHook.IsAllocated)
                eventHook.Free();
            if (logHook.IsAllocated)
                logHook.Free();
            return true;
        }
    }

    internal enum OutputOnFailure
    {
        None,
        Status,
        Report,
    }

    /// <summary>Turns result codes into exceptions and output pointers into strings.</summary>
    internal static class Ensure
    {
        internal static void Success(int code)
        {
            if (code != ResultCode.Ok)
                throw Failure(code);
        }

        /// <summary>The exception for a failed call; call it before any other smtpb_ call on the thread.</summary>
        internal static SmtpBridgeException Failure(int code, string status = null, string report = null)
        {
            return new SmtpBridgeException(code, Utf8.Copy(NativeMethods.smtpb_last_error()), status, report);
        }

        /// <summary>Takes (copies and frees) output whatever the result; returns it, or throws with it attached.</summary>
        internal static string Output(string function, int code, IntPtr output, OutputOnFailure kind = OutputOnFailure.None)
        {
            string message = code != ResultCode.Ok ? Utf8.Copy(NativeMethods.smtpb_last_error()) : null;
            string text = Utf8.Take(output);
            if (code != ResultCode.Ok)
                throw new SmtpBridgeException(code, message,
                    kind == OutputOnFailure.Status ? text : null, kind == OutputOnFailure.Report ? text : null);
            if (text == null)
                throw new SmtpBridgeException(ResultCode.Internal, function + " returned SMTPB_OK without its output");
            return text;
        }
    }

    /// <summary>UTF-8 by hand: byte[] with a trailing NUL in, IntPtr out.</summary>
    internal static class Utf8
    {
        private static readonly Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated UTF-8 for an argument; null stays NULL.</summary>
        internal static byte[] In(string value, string what)
        {
            if (value == null)
                return null;
            if (value.IndexOf('\0') >= 0)
                throw new SmtpBridgeException(ResultCode.InvalidArgument, what + " contains a NUL character");
            try
            {
                var bytes = new byte[Strict.GetByteCount(value) + 1];
                Strict.GetBytes(value, 0, value.Length, bytes, 0);
                return bytes;
            }
            catch (EncoderFallbackException)
            {
                throw new SmtpBridgeException(ResultCode.InvalidArgument, what + " holds a lone UTF-16 surrogate");
            }
        }

        /// <summary>Copies a NUL-terminated UTF-8 string the library owns (NULL: null).</summary>
        internal static string Copy(IntPtr text)
        {
            if (text == IntPtr.Zero)
                return null;
            int length = 0;
            while (Marshal.ReadByte(text, length) != 0)
                length++;
            var bytes = new byte[length];
            Marshal.Copy(text, bytes, 0, length);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>Copies a string handed out through an out-pointer, then frees it.</summary>
        internal static string Take(IntPtr text)
        {
            try
            {
                return Copy(text);
            }
            finally
            {
                NativeMethods.smtpb_string_free(text);
            }
        }
    }

    /// <summary>Marks a static method the native side calls back (needed by Mono's AOT; harmless elsewhere).</summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type delegateType)
        {
            DelegateType = delegateType;
        }

        public Type DelegateType { get; private set; }
    }

    /// <summary>The C ABI as declared in include/smtpbridge.h, verbatim. Strings: byte[] (NUL-terminated UTF-8) in, IntPtr out.</summary>
    internal static class NativeMethods
    {
        private const string Library = "smtpbridge";

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void EventFn(IntPtr eventJson, IntPtr userData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint smtpb_abi_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint smtpb_abi_minor();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr smtpb_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr smtpb_result_name(int code);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr smtpb_last_error();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void smtpb_string_free(IntPtr s);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_client_open(byte[] dataDir, byte[] secret, uint flags, out ClientHandle client);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_client_shutdown(ClientHandle c, uint graceMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void smtpb_client_close(IntPtr c);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_config_set(ClientHandle c, byte[] key, byte[] value);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_config_get(ClientHandle c, byte[] key, out IntPtr value);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_config_import_keys(ClientHandle c, byte[] lines);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_config_load_json(ClientHandle c, byte[] json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_config_export_json(ClientHandle c, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_credentials_set(ClientHandle c, byte[] userId, byte[] username, byte[] password);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_credentials_set_oauth2(
            ClientHandle c, byte[] userId, byte[] username, byte[] accessToken, long expiresAt);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_credentials_remove(ClientHandle c, byte[] userId);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_credentials_masked(ClientHandle c, byte[] userId, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_oauth2_begin(
            ClientHandle c, byte[] profile, byte[] userId, byte[] kind, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_oauth2_complete(ClientHandle c, byte[] flowId, uint timeoutMs, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_oauth2_cancel(ClientHandle c, byte[] flowId);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_credentials_set_oauth2_refresh(
            ClientHandle c, byte[] userId, byte[] username, byte[] refreshToken);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_send(ClientHandle c, byte[] messageJson, out IntPtr statusJson);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_enqueue(ClientHandle c, byte[] messageJson, out IntPtr id);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_render(ClientHandle c, byte[] messageJson, out IntPtr eml);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_validate(ClientHandle c, byte[] messageJson);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_merge(ClientHandle c, byte[] templateJson, byte[] recipientsJson, out IntPtr batchJson);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_test_connection(ClientHandle c, byte[] profile, byte[] userId, out IntPtr reportJson);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_status(ClientHandle c, byte[] id, out IntPtr statusJson);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_batch_status(ClientHandle c, byte[] batchId, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_outbox_list(ClientHandle c, byte[] state, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_outbox_stats(ClientHandle c, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_outbox_query(ClientHandle c, byte[] queryJson, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_outbox_purge(ClientHandle c, byte[] before, byte[] statesJson, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_wait(ClientHandle c, byte[] id, uint timeoutMs, out IntPtr statusJson);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_flush(ClientHandle c, uint timeoutMs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_cancel(ClientHandle c, byte[] id);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_batch_cancel(ClientHandle c, byte[] batchId, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_retry(ClientHandle c, byte[] id);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_outbox_pause(ClientHandle c, byte[] profile);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_outbox_resume(ClientHandle c, byte[] profile);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_limits_reset(ClientHandle c, byte[] profile);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_blacklist_add(ClientHandle c, byte[] entry);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_blacklist_remove(ClientHandle c, byte[] entry);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_blacklist_list(ClientHandle c, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_set_event_callback(ClientHandle c, EventFn fn, IntPtr userData);

        // 1.2: one outbox for several processes.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_set_event_callback_all(ClientHandle c, EventFn fn, IntPtr userData);

        // 1.1: diagnostics. The log callback has the event callback's C type.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_set_log_callback(ClientHandle c, EventFn fn, int minLevel, IntPtr userData);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_transcript(ClientHandle c, byte[] id, out IntPtr json);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int smtpb_probe(ClientHandle c, byte[] host, out IntPtr json);
    }
}
