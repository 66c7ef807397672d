// send_mail: send one HTML mail with an attachment through smtpbridge.hpp.
//
//   send_mail PORT ATTACHMENT [TO]
//
// Sends to 127.0.0.1:PORT without TLS or AUTH (a loopback test server such
// as examples/smtp_server.py); ATTACHMENT is an absolute path (on Windows
// C:\..., in UTF-8).
//
// Build (one line): g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude
//   -Ibindings/cpp examples/cpp/send_mail.cpp -Ltarget/release -lsmtpbridge
//   -Wl,-rpath,$PWD/target/release
#include <iostream>
#include <string>

#include "smtpbridge.hpp"
#include "smtpbridge_message.hpp"  // smtpbridge::json::quote

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        std::cerr << "usage: " << argv[0] << " PORT ATTACHMENT [TO]\n";
        return 2;
    }
    // Quoted for JSON: a Windows path's backslashes must be escaped.
    const std::string to = smtpbridge::json::quote(argc == 4 ? argv[3] : "client@example.com");
    const std::string path = smtpbridge::json::quote(argv[2]);
    try {
        auto client = smtpbridge::Client::open();  // in memory; checks the ABI version
        client.config_set("SMTPServer", "127.0.0.1");
        client.config_set("SMTPServerPort", argv[1]);
        client.config_set("SMTPAuthentication", "None");
        std::cout << client.send(R"({"from": {"email": "anna@firm.example", "name": "Anna Smith"},)"
                                 R"( "to": [)" + to + R"(], "subject": "Your invoice - C++ example",)"
                                 R"( "html": "<p>Dear client,</p><p>your invoice is attached.</p>",)"
                                 R"( "attachments": [{"path": )" + path + R"(}]})")
                  << "\n";
    } catch (const smtpbridge::Error &e) {
        std::cerr << e.what() << "\n";  // "SMTPB_ERR_CONNECT: cannot connect to ..."
        if (e.status()) std::cerr << "status: " << *e.status() << "\n";
        return 1;
    }
    return 0;
}
