// SendMail: send one HTML mail with a plain-text part and an attachment
// through the typed C# layer (Message, MessageStatus): no JSON by hand.
//
//   SendMail.exe PORT ATTACHMENT [TO]
//
// Sends to 127.0.0.1:PORT without TLS or AUTH (a loopback test server such
// as examples/smtp_server.py). ATTACHMENT may be any path, e.g.
// C:\docs\inv.pdf (a relative one is made absolute).
//
// Build and run (Mono; see examples/run_all.sh):
//   mcs -r:System.Runtime.Serialization -target:library -out:build/SmtpBridge.Net.dll \
//       bindings/csharp/SmtpBridge.cs bindings/csharp/SmtpBridge.Native.cs bindings/csharp/SmtpBridge.Typed.cs
//   mcs -r:build/SmtpBridge.Net.dll -out:build/SendMail.exe examples/csharp/SendMail.cs
//   LD_LIBRARY_PATH=target/release mono build/SendMail.exe PORT /abs/file.pdf

using System;
using SmtpBridge;

internal static class SendMail
{
    private static int Main(string[] args)
    {
        if (args.Length < 2 || args.Length > 3)
        {
            Console.Error.WriteLine("usage: SendMail.exe PORT ATTACHMENT [TO]");
            return 2;
        }
        try
        {
            using (var client = new Client())  // in memory; checks the ABI version
            {
                client.ConfigSet("SMTPServer", "127.0.0.1");
                client.ConfigSet("SMTPServerPort", args[0]);
                client.ConfigSet("SMTPAuthentication", "None");

                var message = new Message
                {
                    From = new Address("anna@firm.example", "Anna Smith"),
                    Subject = "Your invoice - C# example",
                    Html = "<p>Dear client,</p><p>your invoice is attached.</p>",
                    Text = "Dear client,\nyour invoice is attached.\n",
                };
                message.To.Add(args.Length == 3 ? args[2] : "client@example.com");
                message.Attachments.Add(args[1]);

                MessageStatus status = client.Send(message);
                Console.WriteLine("{0}: {1} to {2} ({3} {4})", status.Id, status.State,
                    string.Join(", ", status.Recipients), status.SmtpCode, status.SmtpResponse);
            }
            return 0;
        }
        catch (SmtpBridgeException e)
        {
            Console.Error.WriteLine(e.Message);  // "SMTPB_ERR_CONNECT: cannot connect to ..."
            MessageStatus failed = e.MessageStatus;
            if (failed != null)
                Console.Error.WriteLine("message {0} is {1}", failed.Id, failed.State);
            return 1;
        }
    }
}
