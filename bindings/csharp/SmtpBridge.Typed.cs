// SmtpBridge.Typed.cs: typed messages, statuses, reports and events over the
// one-to-one Client methods of SmtpBridge.cs (which stay as they are).
//
//     using (var client = new SmtpBridge.Client())
//     {
//         client.ConfigSet("SMTPServer", "smtp.example.com");
//         var message = new Message { Subject = "Your invoice", Html = "<p>Dear client,</p>" };
//         message.To.Add("client@example.com");
//         message.Attachments.Add(@"C:\docs\inv.pdf");
//         MessageStatus status = client.Send(message);   // status.State == MessageState.Sent
//     }
//
// JSON is written and read with DataContractJsonSerializer (the framework's;
// reference System.Runtime.Serialization), so every string is escaped
// correctly: line breaks, backslashes of Windows paths, quotes, non-ASCII.
// Fields the library adds later are ignored when reading; an unknown state
// reads as MessageState.Unknown (not final). C# 6, .NET Framework 4.5+, Mono,
// netstandard2.0; no NuGet packages.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.Serialization;
using System.Runtime.Serialization.Json;
using System.Text;
using System.Threading.Tasks;

namespace SmtpBridge
{
    /// <summary>A mailbox: an address and an optional display name. A string converts to one.</summary>
    [DataContract]
    public sealed class Address
    {
        public Address(string email, string name = null)
        {
            Email = email;
            Name = name;
        }

        [DataMember(Name = "email", Order = 0)]
        public string Email { get; set; }

        [DataMember(Name = "name", EmitDefaultValue = false, Order = 1)]
        public string Name { get; set; }

        public static implicit operator Address(string email)
        {
            return email == null ? null : new Address(email);
        }

        public override string ToString()
        {
            return Name == null ? Email : Name + " <" + Email + ">";
        }
    }

    /// <summary>An attachment or inline part: a file (an absolute path) or bytes with a name.</summary>
    [DataContract]
    public sealed class Part
    {
        [DataMember(Name = "path", EmitDefaultValue = false, Order = 0)]
        public string Path { get; set; }

        [DataMember(Name = "content_base64", EmitDefaultValue = false, Order = 1)]
        public string ContentBase64 { get; set; }

        [DataMember(Name = "name", EmitDefaultValue = false, Order = 2)]
        public string Name { get; set; }

        [DataMember(Name = "content_type", EmitDefaultValue = false, Order = 3)]
        public string ContentType { get; set; }

        /// <summary>Inline parts: the Content-ID the HTML refers to as cid:...</summary>
        [DataMember(Name = "cid", EmitDefaultValue = false, Order = 4)]
        public string ContentId { get; set; }
    }

    /// <summary>The attachments of a message.</summary>
    public sealed class AttachmentList : List<Part>
    {
        /// <summary>A file; a relative path is made absolute (against the current directory) here.</summary>
        public Part Add(string path, string name = null, string contentType = null)
        {
            if (path == null)
                throw new ArgumentNullException("path");
            var part = new Part { Path = System.IO.Path.GetFullPath(path), Name = name, ContentType = contentType };
            Add(part);
            return part;
        }

        /// <summary>Bytes held in memory, under a file name.</summary>
        public Part Add(byte[] content, string name, string contentType = null)
        {
            if (content == null)
                throw new ArgumentNullException("content");
            if (name == null)
                throw new ArgumentNullException("name");
            var part = new Part { ContentBase64 = Convert.ToBase64String(content), Name = name, ContentType = contentType };
            Add(part);
            return part;
        }
    }

    /// <summary>The inline images of a message's HTML, each with its Content-ID.</summary>
    public sealed class InlineList : List<Part>
    {
        public Part Add(string path, string contentId, string contentType = null)
        {
            if (path == null)
                throw new ArgumentNullException("path");
            var part = new Part { Path = System.IO.Path.GetFullPath(path), ContentId = contentId, ContentType = contentType };
            Add(part);
            return part;
        }

        public Part Add(byte[] content, string name, string contentId, string contentType = null)
        {
            if (content == null)
                throw new ArgumentNullException("content");
            var part = new Part
            {
                ContentBase64 = Convert.ToBase64String(content), Name = name, ContentId = contentId, ContentType = contentType
            };
            Add(part);
            return part;
        }
    }

    /// <summary>A message to send (the message JSON of the ABI, §6). Needs a recipient and Html or Text.</summary>
    [DataContract]
    public sealed class Message
    {
        public Message()
        {
            To = new List<Address>();
            Cc = new List<Address>();
            Bcc = new List<Address>();
            Attachments = new AttachmentList();
            Inline = new InlineList();
            Headers = new Dictionary<string, string>();
        }

        /// <summary>Whose credentials send it (the host's user id).</summary>
        [DataMember(Name = "user", EmitDefaultValue = false, Order = 0)]
        public string User { get; set; }

        /// <summary>The profile to send with; null = chosen by the sender.</summary>
        [DataMember(Name = "profile", EmitDefaultValue = false, Order = 1)]
        public string Profile { get; set; }

        /// <summary>The sender; null = the profile's SMTPSenderEmail.</summary>
        [DataMember(Name = "from", EmitDefaultValue = false, Order = 2)]
        public Address From { get; set; }

        [DataMember(Name = "reply_to", EmitDefaultValue = false, Order = 3)]
        public Address ReplyTo { get; set; }

        [DataMember(Name = "to", Order = 4)]
        public List<Address> To { get; private set; }

        [DataMember(Name = "cc", Order = 5)]
        public List<Address> Cc { get; private set; }

        [DataMember(Name = "bcc", Order = 6)]
        public List<Address> Bcc { get; private set; }

        [DataMember(Name = "subject", EmitDefaultValue = false, Order = 7)]
        public string Subject { get; set; }

        [DataMember(Name = "html", EmitDefaultValue = false, Order = 8)]
        public string Html { get; set; }

        [DataMember(Name = "text", EmitDefaultValue = false, Order = 9)]
        public string Text { get; set; }

        [DataMember(Name = "attachments", Order = 10)]
        public AttachmentList Attachments { get; private set; }

        [DataMember(Name = "inline", Order = 11)]
        public InlineList Inline { get; private set; }

        /// <summary>Extra headers, e.g. X-Practice-Ref.</summary>
        [DataMember(Name = "headers", Order = 12)]
        public Dictionary<string, string> Headers { get; private set; }

        /// <summary>The host's reference, kept in the status and events.</summary>
        [DataMember(Name = "reference", EmitDefaultValue = false, Order = 13)]
        public string Reference { get; set; }

        /// <summary>A key used once: sending again with it returns the first message.</summary>
        [DataMember(Name = "idempotency_key", EmitDefaultValue = false, Order = 14)]
        public string IdempotencyKey { get; set; }

        /// <summary>File a copy in the archive once sent; null = as the profile says.</summary>
        [DataMember(Name = "archive", EmitDefaultValue = false, Order = 15)]
        public bool? Archive { get; set; }

        /// <summary>The message JSON the library takes.</summary>
        public string ToJson()
        {
            return Json.Write(this);
        }
    }

    /// <summary>One recipient of a merge (docs/REFERENCE.md, "Message JSON"): its own message from the template.</summary>
    [DataContract]
    public sealed class MergeRecipient
    {
        public MergeRecipient(string email, string name = null)
        {
            Email = email;
            Name = name;
            Fields = new Dictionary<string, string>();
            Cc = new List<Address>();
            Attachments = new AttachmentList();
        }

        [DataMember(Name = "email", Order = 0)]
        public string Email { get; set; }

        [DataMember(Name = "name", EmitDefaultValue = false, Order = 1)]
        public string Name { get; set; }

        /// <summary>The values of the template's {{Field}} placeholders.</summary>
        [DataMember(Name = "fields", Order = 2)]
        public Dictionary<string, string> Fields { get; private set; }

        [DataMember(Name = "cc", Order = 3)]
        public List<Address> Cc { get; private set; }

        [DataMember(Name = "attachments", Order = 4)]
        public AttachmentList Attachments { get; private set; }

        [DataMember(Name = "reference", EmitDefaultValue = false, Order = 5)]
        public string Reference { get; set; }
    }

    /// <summary>The state of a message. Unknown: a state this binding does not know (treat as not final).</summary>
    public enum MessageState
    {
        Unknown,
        Queued,
        Sending,
        Sent,
        Deferred,
        Failed,
        Cancelled,
    }

    /// <summary>What the library recognised as the cause of a failure, and what to change.</summary>
    [DataContract]
    public sealed class Advice
    {
        /// <summary>A stable key (e.g. basic_auth_disabled), for hosts that translate.</summary>
        [DataMember(Name = "key")]
        public string Key { get; set; }

        /// <summary>English text saying what to change.</summary>
        [DataMember(Name = "text")]
        public string Text { get; set; }
    }

    /// <summary>A recipient the server refused while others were accepted.</summary>
    [DataContract]
    public sealed class RejectedRecipient
    {
        [DataMember(Name = "address")]
        public string Address { get; set; }

        [DataMember(Name = "smtp_code")]
        public int? SmtpCode { get; set; }

        [DataMember(Name = "enhanced_code")]
        public string EnhancedCode { get; set; }

        [DataMember(Name = "smtp_response")]
        public string SmtpResponse { get; set; }

        /// <summary>The library's own account of the refusal, when it has one; else null.</summary>
        [DataMember(Name = "error")]
        public string Error { get; set; }
    }

    /// <summary>Where test mode (SMTPTestMode) sent a message instead of its own recipients.</summary>
    [DataContract]
    public sealed class TestModeInfo
    {
        /// <summary>The test addresses that got it.</summary>
        [DataMember(Name = "redirected_to")]
        public List<string> RedirectedTo { get; set; }

        /// <summary>The recipients it had (to, cc and bcc, blacklisted ones left out).</summary>
        [DataMember(Name = "original")]
        public List<string> Original { get; set; }
    }

    /// <summary>Where the archived copy of a sent message was filed.</summary>
    [DataContract]
    public sealed class ArchiveInfo
    {
        [DataMember(Name = "dir")]
        public string Dir { get; set; }

        [DataMember(Name = "html")]
        public string Html { get; set; }

        [DataMember(Name = "eml")]
        public string Eml { get; set; }

        /// <summary>meta.json: the message's record as filed.</summary>
        [DataMember(Name = "meta")]
        public string Meta { get; set; }

        [DataMember(Name = "attachments")]
        public List<string> Attachments { get; set; }
    }

    /// <summary>Shared parsing of the state name and times.</summary>
    internal static class Parse
    {
        internal static MessageState State(string name)
        {
            switch (name)
            {
                case "queued": return MessageState.Queued;
                case "sending": return MessageState.Sending;
                case "sent": return MessageState.Sent;
                case "deferred": return MessageState.Deferred;
                case "failed": return MessageState.Failed;
                case "cancelled": return MessageState.Cancelled;
                default: return MessageState.Unknown;
            }
        }

        /// <summary>An RFC 3339 UTC time as a UTC DateTime; null stays null.</summary>
        internal static DateTime? Time(string text)
        {
            if (text == null)
                return null;
            return DateTime.Parse(text, CultureInfo.InvariantCulture,
                DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
        }
    }

    /// <summary>The status of a message (docs/REFERENCE.md, "Status JSON").</summary>
    [DataContract]
    public sealed class MessageStatus
    {
        [DataMember(Name = "id")] public string Id { get; set; }
        [DataMember(Name = "reference")] public string Reference { get; set; }
        [DataMember(Name = "batch_id")] public string BatchId { get; set; }
        [DataMember(Name = "profile")] public string Profile { get; set; }
        [DataMember(Name = "state")] public string StateName { get; set; }
        [DataMember(Name = "attempts")] public int Attempts { get; set; }
        [DataMember(Name = "message_id")] public string MessageId { get; set; }
        [DataMember(Name = "smtp_code")] public int? SmtpCode { get; set; }
        [DataMember(Name = "enhanced_code")] public string EnhancedCode { get; set; }
        [DataMember(Name = "smtp_response")] public string SmtpResponse { get; set; }
        /// <summary>The result code of the failure (0 when none), one of <see cref="ResultCode"/>.</summary>
        [DataMember(Name = "error_code")] public int ErrorCode { get; set; }
        [DataMember(Name = "error")] public string Error { get; set; }
        /// <summary>"credentials" when the message waits for new credentials; else null.</summary>
        [DataMember(Name = "needs")] public string Needs { get; set; }
        [DataMember(Name = "recipients")] public List<string> Recipients { get; set; }
        [DataMember(Name = "blocked")] public List<string> Blocked { get; set; }
        [DataMember(Name = "rejected")] public List<RejectedRecipient> Rejected { get; set; }
        [DataMember(Name = "partial")] public bool Partial { get; set; }
        [DataMember(Name = "possible_duplicate")] public bool PossibleDuplicate { get; set; }
        [DataMember(Name = "created_at")] public string CreatedAtText { get; set; }
        [DataMember(Name = "sent_at")] public string SentAtText { get; set; }
        [DataMember(Name = "next_attempt_at")] public string NextAttemptAtText { get; set; }
        [DataMember(Name = "archive")] public ArchiveInfo Archive { get; set; }
        /// <summary>Diagnostics: the recognised cause, when there is one; else null.</summary>
        [DataMember(Name = "advice")] public Advice Advice { get; set; }
        /// <summary>1.2: where test mode sent the message instead; null when test mode was off.</summary>
        [DataMember(Name = "test_mode")] public TestModeInfo TestMode { get; set; }
        /// <summary>How the last attempt delivered: "smtp" or "graph"; null before one.</summary>
        [DataMember(Name = "transport")] public string Transport { get; set; }
        /// <summary>The HTTP status of the last Microsoft Graph attempt; else null.</summary>
        [DataMember(Name = "http_status")] public int? HttpStatus { get; set; }

        public MessageState State { get { return Parse.State(StateName); } }

        /// <summary>Sent, failed or cancelled: the state will not change again.</summary>
        public bool IsFinal
        {
            get { return State == MessageState.Sent || State == MessageState.Failed || State == MessageState.Cancelled; }
        }

        public DateTime? CreatedAt { get { return Parse.Time(CreatedAtText); } }
        public DateTime? SentAt { get { return Parse.Time(SentAtText); } }
        public DateTime? NextAttemptAt { get { return Parse.Time(NextAttemptAtText); } }

        public static MessageStatus FromJson(string json)
        {
            MessageStatus status = Json.Read<MessageStatus>(json);
            FillLists(status);
            return status;
        }

        // Lists the JSON left out are empty, never null.
        internal static void FillLists(MessageStatus status)
        {
            if (status.Recipients == null) status.Recipients = new List<string>();
            if (status.Blocked == null) status.Blocked = new List<string>();
            if (status.Rejected == null) status.Rejected = new List<RejectedRecipient>();
        }
    }

    /// <summary>The result of a merge: the batch and one message id per recipient, in order.</summary>
    [DataContract]
    public sealed class BatchResult
    {
        [DataMember(Name = "batch_id")] public string BatchId { get; set; }
        [DataMember(Name = "ids")] public List<string> Ids { get; set; }
        [DataMember(Name = "count")] public int Count { get; set; }

        public static BatchResult FromJson(string json)
        {
            return Json.Read<BatchResult>(json);
        }
    }

    /// <summary>The token a connection test of an OAuth2 profile used.</summary>
    [DataContract]
    public sealed class OAuth2Check
    {
        [DataMember(Name = "expires_at")] public string ExpiresAtText { get; set; }
        /// <summary>The test refreshed the token first.</summary>
        [DataMember(Name = "refreshed")] public bool Refreshed { get; set; }
    }

    /// <summary>The report of a connection test (docs/REFERENCE.md, "Other shapes").</summary>
    [DataContract]
    public sealed class TestReport
    {
        [DataMember(Name = "ok")] public bool Ok { get; set; }
        [DataMember(Name = "profile")] public string Profile { get; set; }
        /// <summary>The last stage passed, or the stage that failed: connect, greeting, ehlo, tls, auth, done.</summary>
        [DataMember(Name = "stage")] public string Stage { get; set; }
        [DataMember(Name = "banner")] public string Banner { get; set; }
        [DataMember(Name = "capabilities")] public List<string> Capabilities { get; set; }
        /// <summary>"TLSv1.3", "TLSv1.2", or null without TLS.</summary>
        [DataMember(Name = "tls")] public string Tls { get; set; }
        [DataMember(Name = "auth_mechanisms")] public List<string> AuthMechanisms { get; set; }
        [DataMember(Name = "error_code")] public int ErrorCode { get; set; }
        [DataMember(Name = "error")] public string Error { get; set; }
        [DataMember(Name = "advice")] public Advice Advice { get; set; }
        /// <summary>An OAuth2 profile's token; null for other profiles.</summary>
        [DataMember(Name = "oauth2")] public OAuth2Check OAuth2 { get; set; }
        /// <summary>Microsoft Graph profiles: "graph"; else null.</summary>
        [DataMember(Name = "transport")] public string Transport { get; set; }
        /// <summary>Microsoft Graph profiles: the HTTP status of the last request.</summary>
        [DataMember(Name = "http_status")] public int? HttpStatus { get; set; }
        /// <summary>Microsoft Graph profiles: the mailbox's address, once it was read.</summary>
        [DataMember(Name = "mailbox")] public string Mailbox { get; set; }

        public static TestReport FromJson(string json)
        {
            return Json.Read<TestReport>(json);
        }
    }

    /// <summary>An event (docs/REFERENCE.md, "Events"): a message's new state, or Type "credentials_needed".</summary>
    [DataContract]
    public sealed class MessageEvent
    {
        /// <summary>null for a message's state change; "credentials_needed" (with UserId, Profile).</summary>
        [DataMember(Name = "type")] public string Type { get; set; }
        [DataMember(Name = "seq")] public long Seq { get; set; }
        [DataMember(Name = "time")] public string TimeText { get; set; }
        [DataMember(Name = "id")] public string Id { get; set; }
        [DataMember(Name = "batch_id")] public string BatchId { get; set; }
        [DataMember(Name = "reference")] public string Reference { get; set; }
        [DataMember(Name = "state")] public string StateName { get; set; }
        [DataMember(Name = "attempts")] public int Attempts { get; set; }
        [DataMember(Name = "error_code")] public int ErrorCode { get; set; }
        [DataMember(Name = "error")] public string Error { get; set; }
        [DataMember(Name = "possible_duplicate")] public bool PossibleDuplicate { get; set; }
        [DataMember(Name = "rejected_count")] public int RejectedCount { get; set; }
        /// <summary>Events dropped before this one (more than 10,000 undelivered).</summary>
        [DataMember(Name = "dropped")] public long Dropped { get; set; }
        [DataMember(Name = "user_id")] public string UserId { get; set; }
        [DataMember(Name = "profile")] public string Profile { get; set; }

        public MessageState State { get { return Parse.State(StateName); } }
        public DateTime? Time { get { return Parse.Time(TimeText); } }
    }

    /// <summary>The arguments of Client.MessageChanged.</summary>
    public sealed class MessageEventArgs : EventArgs
    {
        public MessageEventArgs(MessageEvent e, string json)
        {
            Event = e;
            Json = json;
        }

        public MessageEvent Event { get; private set; }

        /// <summary>The event as the library wrote it (fields this binding does not know included).</summary>
        public string Json { get; private set; }
    }

    public partial class SmtpBridgeException
    {
        /// <summary>Send: the typed status of the failed message when it was recorded; else null.</summary>
        public MessageStatus MessageStatus
        {
            get { return Status == null ? null : MessageStatus.FromJson(Status); }
        }

        /// <summary>Test: the typed report when the server was contacted; else null.</summary>
        public TestReport TestReport
        {
            get { return Report == null ? null : TestReport.FromJson(Report); }
        }
    }

    public sealed partial class Client
    {
        private readonly object typedEventLock = new object();
        private EventHandler<MessageEventArgs> messageChanged;

        /// <summary>
        /// Sends a message now and waits for the outcome. Throws
        /// SmtpBridgeException; its MessageStatus is the failed message's
        /// status when it was recorded (Retry(status.Id) queues it again).
        /// </summary>
        public MessageStatus Send(Message message)
        {
            return MessageStatus.FromJson(Send(Json.Write(Required(message, "message"))));
        }

        /// <summary>Send on a worker thread; the task faults with the SmtpBridgeException.</summary>
        public Task<MessageStatus> SendAsync(Message message)
        {
            string json = Json.Write(Required(message, "message"));
            return Task.Factory.StartNew(() => MessageStatus.FromJson(Send(json)), TaskCreationOptions.LongRunning);
        }

        /// <summary>Makes the message durable in the outbox; returns its id.</summary>
        public string Enqueue(Message message)
        {
            return Enqueue(Json.Write(Required(message, "message")));
        }

        /// <summary>The MIME (.eml text) the message would be sent as; nothing is sent or recorded.</summary>
        public string Render(Message message)
        {
            return Render(Json.Write(Required(message, "message")));
        }

        /// <summary>Checks the message and the settings it would use; throws SmtpBridgeException.</summary>
        public void Validate(Message message)
        {
            Validate(Json.Write(Required(message, "message")));
        }

        /// <summary>One message per recipient from the template, as one batch.</summary>
        public BatchResult Merge(Message template, IEnumerable<MergeRecipient> recipients)
        {
            var list = new List<MergeRecipient>(Required(recipients, "recipients"));
            return BatchResult.FromJson(Merge(Json.Write(Required(template, "template")), Json.Write(list)));
        }

        /// <summary>The status of message id (NotFound: an unknown id).</summary>
        public MessageStatus GetStatus(string id)
        {
            return MessageStatus.FromJson(Status(id));
        }

        /// <summary>The statuses in the outbox, in one state or (null) all.</summary>
        public List<MessageStatus> GetOutbox(MessageState? state = null)
        {
            string name = state.HasValue ? state.Value.ToString().ToLowerInvariant() : null;
            List<MessageStatus> list = Json.Read<List<MessageStatus>>(OutboxList(name));
            list.ForEach(MessageStatus.FillLists);
            return list;
        }

        /// <summary>Waits until message id is sent, failed or cancelled (Timeout: not yet).</summary>
        public MessageStatus WaitFor(string id, uint timeoutMs = Infinite)
        {
            return MessageStatus.FromJson(Wait(id, timeoutMs));
        }

        /// <summary>WaitFor on a worker thread; the task faults with the SmtpBridgeException.</summary>
        public Task<MessageStatus> WaitAsync(string id, uint timeoutMs = Infinite)
        {
            return Task.Factory.StartNew(() => WaitFor(id, timeoutMs), TaskCreationOptions.LongRunning);
        }

        /// <summary>Tests a profile's connection; throws with the TestReport when a stage failed.</summary>
        public TestReport Test(string profile = null, string userId = null)
        {
            return TestReport.FromJson(TestConnection(profile, userId));
        }

        /// <summary>
        /// Raised on the client's event thread for each event, one at a time.
        /// Subscribing sets the client's event callback (it replaces one set
        /// with SetEventCallback, and SetEventCallback replaces this); after
        /// the last handler is removed no event is raised. A handler's
        /// exception is caught and written to Trace. Handlers may call the
        /// client, but must not wait for a thread that is closing or flushing it.
        /// </summary>
        public event EventHandler<MessageEventArgs> MessageChanged
        {
            add
            {
                lock (typedEventLock)
                {
                    bool first = messageChanged == null;
                    messageChanged += value;
                    if (first)
                        SetEventCallback(RaiseMessageChanged);
                }
            }
            remove
            {
                lock (typedEventLock)
                {
                    messageChanged -= value;
                    if (messageChanged == null)
                        SetEventCallback(null);
                }
            }
        }

        private void RaiseMessageChanged(string json)
        {
            EventHandler<MessageEventArgs> handlers = messageChanged;
            if (handlers != null)
                handlers(this, new MessageEventArgs(Json.Read<MessageEvent>(json), json));
        }

        private static T Required<T>(T value, string name) where T : class
        {
            if (value == null)
                throw new ArgumentNullException(name);
            return value;
        }
    }

    /// <summary>DataContractJsonSerializer with the ABI's shapes: objects for dictionaries, UTF-8.</summary>
    internal static class Json
    {
        private static DataContractJsonSerializer Serializer(Type type)
        {
            return new DataContractJsonSerializer(type, new DataContractJsonSerializerSettings
            {
                UseSimpleDictionaryFormat = true,
            });
        }

        internal static string Write<T>(T value)
        {
            using (var stream = new MemoryStream())
            {
                Serializer(typeof(T)).WriteObject(stream, value);
                return Encoding.UTF8.GetString(stream.ToArray());
            }
        }

        internal static T Read<T>(string json)
        {
            using (var stream = new MemoryStream(Encoding.UTF8.GetBytes(json)))
                return (T)Serializer(typeof(T)).ReadObject(stream);
        }
    }
}
