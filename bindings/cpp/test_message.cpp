// test_message: smtpbridge::Message builds the message JSON, escaped.
// tests/test_cpp_message.py builds this with -Wall -Wextra -Werror, runs
//
//   test_message PORT ATTACHMENT
//
// against a loopback server without TLS or AUTH, reads the JSON it prints
// (first line) and checks what the server received. Exit 0 when sent.
#include <cstdio>
#include <iostream>
#include <string>

#include "smtpbridge.hpp"
#include "smtpbridge_message.hpp"

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: test_message PORT ATTACHMENT\n");
        return 2;
    }
    smtpbridge::Message message;
    message.from("anna@firm.example", "Anna \"The\" Smith")
        .to("client@example.com", "Client, Main")
        .cc("copy@example.com")
        .subject("C++ builder \xc3\x84 \xe2\x82\xac")
        .text("Line one\r\nLine two\n\tTabbed \"quoted\" back\\slash C:\\docs\\inv.pdf \x01 end")
        .html("<p>Dear client,</p><img src=\"cid:logo\">")
        .attach(argv[2], std::string("Invoice.pdf"), std::string("application/pdf"))
        .attach_bytes({'a', ' ', 'n', 'o', 't', 'e', '\n'}, "note.txt")
        .inline_image(argv[2], "logo", std::string("image/png"))
        .header("X-Practice-Ref", "CL-1001")
        .reference("CL-1001/DOC-7")
        .idempotency_key("cpp-1")
        .archive(false);
    std::cout << message.json() << std::endl;
    try {
        auto client = smtpbridge::Client::open();
        client.config_set("SMTPServer", "127.0.0.1");
        client.config_set("SMTPServerPort", argv[1]);
        client.config_set("SMTPAuthentication", "None");
        std::cout << client.send(message.json()) << std::endl;
    } catch (const smtpbridge::Error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
