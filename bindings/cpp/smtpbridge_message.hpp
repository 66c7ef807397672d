// smtpbridge_message.hpp: a builder for the message JSON (docs/REFERENCE.md), so a
// C++ host never writes JSON by hand. Header-only C++17, no dependencies.
//
//     #include "smtpbridge.hpp"
//     #include "smtpbridge_message.hpp"
//     smtpbridge::Message message;
//     message.from("anna@firm.example", "Anna Smith")
//         .to("client@example.com")
//         .subject("Your invoice")
//         .html("<p>Dear client,</p>")
//         .text("Dear client,\nyour invoice is attached.")
//         .attach("C:\\docs\\inv.pdf", "Invoice.pdf", "application/pdf");
//     std::string status = client.send(message.json());
//
// Strings are UTF-8 and are escaped for JSON here (quotes, backslashes,
// line breaks and every other control character); the library validates
// the values (addresses, header text, absolute paths) when it is given the
// message. Fields left unset are left out.
#ifndef SMTPBRIDGE_MESSAGE_HPP
#define SMTPBRIDGE_MESSAGE_HPP

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace smtpbridge {

namespace json {

// A JSON string literal of UTF-8 text.
inline std::string quote(const std::string &text) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size() + 2);
    out += '"';
    for (unsigned char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xf];
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    out += '"';
    return out;
}

inline std::string base64(const std::uint8_t *data, std::size_t size) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((size + 2) / 3 * 4);
    for (std::size_t i = 0; i < size; i += 3) {
        std::uint32_t n = static_cast<std::uint32_t>(data[i]) << 16;
        if (i + 1 < size) n |= static_cast<std::uint32_t>(data[i + 1]) << 8;
        if (i + 2 < size) n |= data[i + 2];
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += i + 1 < size ? alphabet[(n >> 6) & 63] : '=';
        out += i + 2 < size ? alphabet[n & 63] : '=';
    }
    return out;
}

// Builds one JSON object, field by field, in order.
class Object {
public:
    Object &raw(const std::string &key, const std::string &value_json) {
        body_ += body_.empty() ? "" : ",";
        body_ += quote(key) + ":" + value_json;
        return *this;
    }
    Object &string(const std::string &key, const std::optional<std::string> &value) {
        return value ? raw(key, quote(*value)) : *this;
    }
    std::string str() const { return "{" + body_ + "}"; }

private:
    std::string body_;
};

}  // namespace json

// A message to send: a recipient and html or text are required.
class Message {
public:
    struct Address {
        std::string email;
        std::optional<std::string> name;
        std::string json() const {
            return json::Object().string("email", email).string("name", name).str();
        }
    };
    struct Part {
        std::optional<std::string> path, content_base64, name, content_type, cid;
        std::string json() const {
            return json::Object()
                .string("path", path)
                .string("content_base64", content_base64)
                .string("name", name)
                .string("content_type", content_type)
                .string("cid", cid)
                .str();
        }
    };

    Message &user(std::string id) { return set(user_, std::move(id)); }
    Message &profile(std::string name) { return set(profile_, std::move(name)); }
    Message &from(std::string email, std::optional<std::string> name = std::nullopt) {
        from_ = Address{std::move(email), std::move(name)};
        return *this;
    }
    Message &reply_to(std::string email) {
        reply_to_ = Address{std::move(email), std::nullopt};
        return *this;
    }
    Message &to(std::string email, std::optional<std::string> name = std::nullopt) {
        to_.push_back({std::move(email), std::move(name)});
        return *this;
    }
    Message &cc(std::string email, std::optional<std::string> name = std::nullopt) {
        cc_.push_back({std::move(email), std::move(name)});
        return *this;
    }
    Message &bcc(std::string email, std::optional<std::string> name = std::nullopt) {
        bcc_.push_back({std::move(email), std::move(name)});
        return *this;
    }
    Message &subject(std::string text) { return set(subject_, std::move(text)); }
    Message &html(std::string html) { return set(html_, std::move(html)); }
    Message &text(std::string text) { return set(text_, std::move(text)); }

    // A file by absolute path; name and content type default from the path.
    Message &attach(std::string path, std::optional<std::string> name = std::nullopt,
                    std::optional<std::string> content_type = std::nullopt) {
        Part part;
        part.path = std::move(path);
        part.name = std::move(name);
        part.content_type = std::move(content_type);
        attachments_.push_back(std::move(part));
        return *this;
    }
    // Bytes held in memory, under a file name.
    Message &attach_bytes(const std::vector<std::uint8_t> &content, std::string name,
                          std::optional<std::string> content_type = std::nullopt) {
        Part part;
        part.content_base64 = json::base64(content.data(), content.size());
        part.name = std::move(name);
        part.content_type = std::move(content_type);
        attachments_.push_back(std::move(part));
        return *this;
    }
    // An image the HTML shows as <img src="cid:CID">.
    Message &inline_image(std::string path, std::string cid,
                          std::optional<std::string> content_type = std::nullopt) {
        Part part;
        part.path = std::move(path);
        part.cid = std::move(cid);
        part.content_type = std::move(content_type);
        inline_.push_back(std::move(part));
        return *this;
    }
    Message &header(std::string name, std::string value) {
        headers_.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    Message &reference(std::string reference) { return set(reference_, std::move(reference)); }
    Message &idempotency_key(std::string key) { return set(idempotency_key_, std::move(key)); }
    Message &archive(bool archive) {
        archive_ = archive;
        return *this;
    }

    // The message JSON for Client::send / Client::enqueue.
    std::string json() const {
        json::Object o;
        o.string("user", user_).string("profile", profile_);
        if (from_) o.raw("from", from_->json());
        if (reply_to_) o.raw("reply_to", reply_to_->json());
        o.raw("to", array(to_)).raw("cc", array(cc_)).raw("bcc", array(bcc_));
        o.string("subject", subject_).string("html", html_).string("text", text_);
        o.raw("attachments", array(attachments_)).raw("inline", array(inline_));
        json::Object headers;
        for (const auto &h : headers_) headers.string(h.first, h.second);
        o.raw("headers", headers.str());
        o.string("reference", reference_).string("idempotency_key", idempotency_key_);
        if (archive_) o.raw("archive", *archive_ ? "true" : "false");
        return o.str();
    }

private:
    Message &set(std::optional<std::string> &field, std::string value) {
        field = std::move(value);
        return *this;
    }
    template <typename T>
    static std::string array(const std::vector<T> &items) {
        std::string out = "[";
        for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i].json();
        return out + "]";
    }

    std::optional<std::string> user_, profile_, subject_, html_, text_, reference_, idempotency_key_;
    std::optional<Address> from_, reply_to_;
    std::vector<Address> to_, cc_, bcc_;
    std::vector<Part> attachments_, inline_;
    std::vector<std::pair<std::string, std::string>> headers_;
    std::optional<bool> archive_;
};

}  // namespace smtpbridge

#endif  // SMTPBRIDGE_MESSAGE_HPP
