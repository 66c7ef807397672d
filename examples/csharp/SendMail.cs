// SendMail: send one HTML mail with an attachment through the C# bindings.
//
//   SendMail.exe PORT ATTACHMENT [TO]
//
// Sends to 127.0.0.1:PORT without TLS or AUTH (a loopback test server such
// as examples/smtp_server.py); ATTACHMENT is an absolute path.
//
// Build and run (Mono; see examples/run_all.sh):
//   mcs -target:library -out:build/SmtpBridge.Net.dll bindings/csharp/SmtpBridge.cs
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
        string to = args.Length == 3 ? args[2] : "client@example.com";
        try
        {
            using (var client = new Client())  // in memory; checks the ABI version
            {
                client.ConfigSet("SMTPServer", "127.0.0.1");
                client.ConfigSet("SMTPServerPort", args[0]);
                client.ConfigSet("SMTPAuthentication", "None");
                Console.WriteLine(client.Send(
                    "{\"from\": {\"email\": \"anna@firm.example\", \"name\": \"Anna Smith\"}," +
                    " \"to\": [" + Json(to) + "], \"subject\": \"Your invoice - C# example\"," +
                    " \"html\": \"<p>Dear client,</p><p>your invoice is attached.</p>\"," +
                    " \"attachments\": [{\"path\": " + Json(args[1]) + "}]}"));
            }
            return 0;
        }
        catch (SmtpBridgeException e)
        {
            Console.Error.WriteLine(e.Message);  // "SMTPB_ERR_CONNECT: cannot connect to ..."
            if (e.Status != null)
                Console.Error.WriteLine("status: " + e.Status);
            return 1;
        }
    }

    // A JSON string literal (paths may hold backslashes and quotes).
    private static string Json(string text)
    {
        return "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
    }
}
