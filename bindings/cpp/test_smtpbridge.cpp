// test_smtpbridge: exercises every method of smtpbridge.hpp against a loopback
// SMTP server without TLS or AUTH (e.g. examples/smtp_server.py).
//
//   test_smtpbridge PORT CLOSED_PORT    (CLOSED_PORT: a loopback port nothing listens on)
//
// Sends exactly one mail. Exit code 0 when every check passes.
//
// Build (one line): g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude
//   -Ibindings/cpp bindings/cpp/test_smtpbridge.cpp -Ltarget/release
//   -lsmtpbridge -Wl,-rpath,$PWD/target/release
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "smtpbridge.hpp"

namespace fs = std::filesystem;
using smtpbridge::Client;
using smtpbridge::Error;

static int failures = 0;

#define CHECK(condition)                                                                  \
    do {                                                                                  \
        if (!(condition)) {                                                               \
            ++failures;                                                                   \
            std::cerr << __FILE__ << ":" << __LINE__ << ": FAILED: " #condition "\n";      \
        }                                                                                 \
    } while (0)

static bool contains(const std::string &text, const std::string &part) {
    return text.find(part) != std::string::npos;
}

// The string value of a top-level field of compact JSON ("" if absent).
static std::string field(const std::string &json, const std::string &name) {
    const std::string key = "\"" + name + "\":\"";
    auto at = json.find(key);
    if (at == std::string::npos) return "";
    at += key.size();
    return json.substr(at, json.find('"', at) - at);
}

// Runs call, which must throw Error with `code`; returns the Error's status.
static std::optional<std::string> expect_error(int line, smtpb_result code, const std::function<void()> &call) {
    try {
        call();
    } catch (const Error &e) {
        if (e.code() == code && e.name() == std::string(smtpbridge::result_name(code)) &&
            e.what() == std::string(e.name()) + ": " + e.message())
            return e.status();
        std::cerr << __FILE__ << ":" << line << ": FAILED: expected " << smtpbridge::result_name(code) << ", got "
                  << e.what() << "\n";
        ++failures;
        return e.status();
    }
    std::cerr << __FILE__ << ":" << line << ": FAILED: expected " << smtpbridge::result_name(code)
              << ", nothing thrown\n";
    ++failures;
    return std::nullopt;
}
#define EXPECT_ERROR(code, ...) expect_error(__LINE__, code, [&] { __VA_ARGS__; })

static void test_library() {
    CHECK(smtpbridge::abi_version() == smtpbridge::abi_version_required);
    CHECK(smtpbridge::abi_minor() >= 2);
    CHECK(smtpbridge::version() == SMTPB_VERSION);
    CHECK(std::string(smtpbridge::result_name(SMTPB_ERR_TLS)) == "SMTPB_ERR_TLS");
    CHECK(std::string(smtpbridge::result_name(12345)) == "SMTPB_ERR_UNKNOWN");
    smtpb_string_free(nullptr);  // allowed
    smtpbridge::String none;     // an empty String frees nothing
    CHECK(!none);
}

static void test_config(Client &client, const std::string &port, const std::string &closed_port) {
    client.config_set("SMTPServer", "127.0.0.1");
    client.config_set("SMTPServerPort", port);
    client.config_set("smtpauthentication", "None");  // keys match in any case
    CHECK(client.config_get("SMTPServer") == "127.0.0.1");
    CHECK(client.config_get("SMTPServerPort") == port);
    CHECK(client.config_get("SMTPConnectionTimeout") == "30000");  // a default

    client.config_set("SMTPConnectionTimeout", "5000");
    CHECK(client.config_get("SMTPConnectionTimeout") == "5000");
    client.config_set("SMTPConnectionTimeout", std::nullopt);  // NULL: back to the default
    CHECK(client.config_get("SMTPConnectionTimeout") == "30000");

    client.config_import_keys("# a host's key table\r\nSMTPSenderName=Anna Smith\r\n\r\n"
                              "SMTPSenderEmail=anna@firm.example\r\nDead.SMTPServer=127.0.0.1\r\n"
                              "Dead.SMTPServerPort=" + closed_port + "\r\nDead.SMTPAuthentication=None\r\n");
    CHECK(client.config_get("SMTPSenderEmail") == "anna@firm.example");
    CHECK(client.config_get("Dead.SMTPServerPort") == closed_port);

    EXPECT_ERROR(SMTPB_ERR_CONFIG, client.config_set("SMTPNoSuchKey", "1"));
    EXPECT_ERROR(SMTPB_ERR_CONFIG, client.config_set("SMTPServerEncryption", "sometimes"));
    EXPECT_ERROR(SMTPB_ERR_CONFIG, client.config_get("SMTPPassword"));
    EXPECT_ERROR(SMTPB_ERR_CONFIG, client.config_import_keys("SMTPHeloName=a\nsmtpheloname=b\n"));
    CHECK(client.config_get("SMTPHeloName") != "a");  // all or nothing
    EXPECT_ERROR(SMTPB_ERR_INVALID_ARGUMENT, client.config_load_json("{\"profiles\": ["));
    EXPECT_ERROR(SMTPB_ERR_INVALID_ARGUMENT, client.config_set(std::string("SMTPServer\0x", 12), "h"));

    // Export, load into a second client, export again: the same text.
    const std::string exported = client.config_export_json();
    CHECK(contains(exported, "\"profiles\""));
    CHECK(contains(exported, "Dead"));
    Client other = Client::open();
    other.config_load_json(exported);
    CHECK(other.config_export_json() == exported);
}

static void test_credentials(Client &client) {
    client.credentials_set(std::nullopt, "office@firm.example", "s3cret-password");
    const std::string shared = client.credentials_masked(std::nullopt);
    CHECK(contains(shared, "office@firm.example"));
    CHECK(contains(shared, "\"kind\":\"password\""));
    CHECK(!contains(shared, "s3cret-password"));
    client.credentials_remove(std::nullopt);
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.credentials_masked(std::nullopt));

    client.credentials_set_oauth2("emp-42", "anna@firm.example", "ya29.token-value", 4102444800);
    const std::string oauth = client.credentials_masked("emp-42");
    CHECK(contains(oauth, "\"kind\":\"oauth2\""));
    CHECK(!contains(oauth, "ya29.token-value"));
    client.credentials_remove("emp-42");
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.credentials_remove("emp-42"));
    EXPECT_ERROR(SMTPB_ERR_INVALID_ARGUMENT, client.credentials_set("emp-1", "u", std::string("p\0w", 3)));
}

static void test_blacklist(Client &client) {
    client.blacklist_add("Gone@Example.com");
    client.blacklist_add("@blocked.example");
    const std::string list = client.blacklist_list();
    CHECK(contains(list, "\"gone@example.com\""));
    CHECK(contains(list, "\"@blocked.example\""));

    // Every recipient blacklisted: BLOCKED, and nothing is recorded.
    auto status = EXPECT_ERROR(SMTPB_ERR_BLOCKED,
                               client.send(R"({"to": ["x@blocked.example"], "subject": "s", "text": "t"})"));
    CHECK(!status);

    client.blacklist_remove("gone@example.com");
    client.blacklist_remove("@blocked.example");
    CHECK(client.blacklist_list() == "[]");
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.blacklist_remove("@blocked.example"));
}

static void test_limits(Client &client) {
    client.config_set("SMTPSendLimit", "100");
    client.config_set("SMTPSendLimitPeriod", "day");
    client.limits_reset("default");  // profile names match in any case
    client.limits_reset();           // every profile
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.limits_reset("NoSuchProfile"));
    client.config_set("SMTPSendLimit", std::nullopt);
    client.config_set("SMTPSendLimitPeriod", std::nullopt);
}

static void test_send(Client &client, const fs::path &attachment) {
    const std::string report = client.test_connection();
    CHECK(contains(report, "\"ok\":true"));
    CHECK(contains(report, "\"stage\":\"done\""));

    const std::string message = R"({"to": ["client@example.com"], "subject": "C++ binding test",)"
                                R"( "html": "<p>Grüße from <b>C++</b></p>", "reference": "bindings/cpp",)"
                                R"( "attachments": [{"path": ")" + attachment.generic_string() +
                                R"(", "name": "note.txt"}]})";
    const std::string sent = client.send(message);
    CHECK(field(sent, "state") == "sent");
    CHECK(field(sent, "reference") == "bindings/cpp");
    const std::string id = field(sent, "id");
    CHECK(id.size() == 26);
    const std::string again = client.status(id);
    CHECK(field(again, "id") == id);
    CHECK(field(again, "state") == "sent");
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.status("01ARZ3NDEKTSV4RRFFQ69G5FAV"));

    // 1.2: render and validate send and record nothing; lists as typed in Outlook.
    const std::string typed = R"({"to": "Müller, Hans <h@example.com>; b@example.com", "subject": "Rendered",)"
                              R"( "text": "looked at"})";
    const std::string eml = client.render(typed);
    CHECK(contains(eml, "Subject: Rendered\r\n"));
    CHECK(contains(eml, "<h@example.com>") && contains(eml, "b@example.com"));
    client.validate(typed);
    EXPECT_ERROR(SMTPB_ERR_MESSAGE, client.render(R"({"to": "not an address", "text": "t"})"));
    EXPECT_ERROR(SMTPB_ERR_MESSAGE, client.validate(R"({"to": [], "text": "t"})"));

    // Errors before the message is recorded carry no status...
    auto status = EXPECT_ERROR(SMTPB_ERR_MESSAGE,
                               client.send(R"({"to": ["a@example.com"], "text": "t",)"
                                           R"( "attachments": [{"path": "relative/file.pdf"}]})"));
    CHECK(!status);
    EXPECT_ERROR(SMTPB_ERR_INVALID_ARGUMENT, client.send(R"({"to": ["a@example.com"], "txet": "typo"})"));
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND,
                 client.send(R"({"profile": "NoSuchProfile", "to": ["a@example.com"], "text": "t"})"));

    // ...errors from the server's side carry the status of the failed message.
    status = EXPECT_ERROR(SMTPB_ERR_CONNECT,
                          client.send(R"({"profile": "Dead", "from": "anna@firm.example", "to": ["a@example.com"],)"
                                      R"( "text": "t"})"));
    CHECK(status && field(*status, "state") == "failed");
    CHECK(status && contains(*status, "\"error_code\":4"));
    CHECK(status && client.status(field(*status, "id")) == *status);

    auto failed_report = EXPECT_ERROR(SMTPB_ERR_CONNECT, client.test_connection("Dead"));
    CHECK(failed_report && contains(*failed_report, "\"ok\":false"));
    CHECK(!EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.test_connection("NoSuchProfile")));
}

// Events collected from a callback, to be waited for.
class EventLog {
public:
    void add(const std::string &json) {
        std::lock_guard<std::mutex> lock(mutex_);
        events_.push_back(json);
        changed_.notify_all();
    }
    // Waits up to 5 s for an event with this id and state.
    bool wait_for(const std::string &id, const std::string &state) {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, std::chrono::seconds(5), [&] {
            for (const auto &e : events_)
                if (field(e, "id") == id && field(e, "state") == state) return true;
            return false;
        });
    }

    // Whether an event of message id came (now, without waiting).
    bool has(const std::string &id) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto &e : events_)
            if (field(e, "id") == id) return true;
        return false;
    }

    // Waits up to 5 s for a line that contains text.
    bool wait_for_text(const std::string &text) {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, std::chrono::seconds(5), [&] {
            for (const auto &e : events_)
                if (contains(e, text)) return true;
            return false;
        });
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> events_;
};

// Diagnostics: log lines to a callback, the transcript and advice of a
// failed message, the probe's argument check.
static void test_diagnostics(Client &client) {
    EventLog lines;
    client.set_log_callback([&](const std::string &json) { lines.add(json); }, 4);
    auto status = EXPECT_ERROR(SMTPB_ERR_CONNECT,
                               client.send(R"({"profile": "Dead", "from": "anna@firm.example", "to": ["a@example.com"],)"
                                           R"( "text": "t"})"));
    CHECK(status && contains(*status, "\"advice\":{"));
    CHECK(status && contains(*status, "connection_refused"));
    const std::string id = status ? field(*status, "id") : "";
    const std::string transcript = client.transcript(id);
    CHECK(contains(transcript, "\"attempt\":1"));
    CHECK(contains(transcript, "\"dir\":\"*\""));
    CHECK(lines.wait_for_text(id));
    client.set_log_callback(nullptr);
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.transcript("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
    EXPECT_ERROR(SMTPB_ERR_INVALID_ARGUMENT, client.probe("not a host"));
}

// The outbox, without delivering anything: everything is paused, then cancelled.
static void test_outbox(Client &client, const fs::path &attachment) {
    EventLog events;
    client.set_event_callback([&](const std::string &json) { events.add(json); });

    client.outbox_pause();
    CHECK(contains(client.outbox_stats(), "\"paused\":[\"*\"]"));
    const std::string id = client.enqueue(R"({"to": ["queued@example.com"], "text": "never sent",)"
                                          R"( "attachments": [{"path": ")" + attachment.generic_string() + R"("}]})");
    CHECK(id.size() == 26);
    CHECK(contains(client.outbox_list("queued"), id));
    CHECK(contains(client.outbox_list(), id));
    CHECK(field(client.status(id), "state") == "queued");
    EXPECT_ERROR(SMTPB_ERR_TIMEOUT, client.wait(id, 0));
    client.flush(1000);  // paused mail does not hold a flush
    client.cancel(id);
    CHECK(field(client.wait(id, smtpbridge::infinite), "state") == "cancelled");
    CHECK(events.wait_for(id, "queued"));
    CHECK(events.wait_for(id, "cancelled"));
    EXPECT_ERROR(SMTPB_ERR_STATE, client.cancel(id));
    EXPECT_ERROR(SMTPB_ERR_STATE, client.retry(id));
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.retry("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
    // A merge: two messages in one batch, cancelled as a batch.
    const std::string batch = client.merge(R"({"subject": "Hello {{Name}}", "text": "Dear {{Name}}"})",
                                           R"([{"email": "a@example.com", "fields": {"Name": "A"}},)"
                                           R"( {"email": "b@example.com", "fields": {"Name": "B"}}])");
    const std::string batch_id = field(batch, "batch_id");
    CHECK(batch_id.size() == 26 && contains(batch, "\"count\":2"));
    CHECK(contains(client.batch_status(batch_id), "\"queued\":2"));
    CHECK(contains(client.batch_cancel(batch_id), "\"cancelled\":2"));
    CHECK(contains(client.batch_status(batch_id), "\"cancelled\":2"));
    EXPECT_ERROR(SMTPB_ERR_MESSAGE, client.merge(R"({"subject": "{{Missing}}", "text": "t"})",
                                                 R"([{"email": "a@example.com"}])"));
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.batch_status("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.batch_cancel("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
    // The callback for every message of the data_dir (on a client that
    // holds it alone, every message is its own): it replaces the other.
    EventLog all;
    client.set_event_callback_all([&](const std::string &json) { all.add(json); });
    const std::string second = client.enqueue(R"({"to": ["queued@example.com"], "text": "never sent"})");
    client.cancel(second);
    CHECK(all.wait_for(second, "queued"));
    CHECK(all.wait_for(second, "cancelled"));
    CHECK(!events.has(second));  // the replaced callback never ran again
    EXPECT_ERROR(SMTPB_ERR_INVALID_ARGUMENT, client.outbox_list("bogus"));
    EXPECT_ERROR(SMTPB_ERR_NOT_FOUND, client.outbox_pause("NoSuchProfile"));
    EXPECT_ERROR(SMTPB_ERR_MESSAGE, client.enqueue(R"({"to": [], "text": "t"})"));
    client.outbox_resume();
    CHECK(contains(client.outbox_stats(), "\"paused\":[]"));
    client.set_event_callback(nullptr);
}

// A callback that replaces itself, and one that closes its own client.
static void test_callback_reentry() {
    std::mutex mutex;
    std::condition_variable changed;
    int replaced = 0, threw = 0, closed = 0;
    auto done = [&](int &flag) {
        std::lock_guard<std::mutex> lock(mutex);
        ++flag;
        changed.notify_all();
    };
    auto wait_for = [&](int &flag) {
        std::unique_lock<std::mutex> lock(mutex);
        return changed.wait_for(lock, std::chrono::seconds(5), [&] { return flag > 0; });
    };
    const std::string message = R"({"to": ["a@example.com"], "from": "anna@firm.example", "text": "t"})";

    Client client = Client::open(std::nullopt, std::nullopt, smtpbridge::open_paused);  // nothing is delivered
    client.config_set("SMTPServer", "127.0.0.1");
    client.set_event_callback([&](const std::string &) {
        client.set_event_callback([&](const std::string &) {
            done(threw);
            throw std::runtime_error("dropped before it reaches the library");
        });
        done(replaced);
    });
    client.enqueue(message);
    CHECK(wait_for(replaced));
    client.enqueue(message);
    CHECK(wait_for(threw));

    client.set_event_callback([&](const std::string &) {
        client.close();  // deferred until this callback returns
        done(closed);
    });
    client.enqueue(message);
    CHECK(wait_for(closed));
    CHECK(!client);
}

static void test_lifecycle(const fs::path &dir) {
    // A data directory is held by one client at a time.
    Client first = Client::open(dir.string(), std::string("master secret"));
    first.config_set("SMTPServer", "smtp.example.com");
    first.credentials_set(std::nullopt, "office@firm.example", "app-password");
    EXPECT_ERROR(SMTPB_ERR_BUSY, Client::open(dir.string(), std::string("master secret")));
    EXPECT_ERROR(SMTPB_ERR_INVALID_ARGUMENT, Client::open(std::string("relative/dir")));
    EXPECT_ERROR(SMTPB_ERR_INVALID_ARGUMENT, Client::open(std::nullopt, std::nullopt, 0x80));

    // Moving hands the handle over; the moved-from Client is closed.
    smtpb_client *raw = first.get();
    CHECK(raw != nullptr);
    Client second = std::move(first);
    CHECK(!first && first.get() == nullptr);
    CHECK(second && second.get() == raw);
    EXPECT_ERROR(SMTPB_ERR_STATE, first.config_get("SMTPServer"));
    second.close();
    second.close();  // idempotent
    EXPECT_ERROR(SMTPB_ERR_STATE, second.blacklist_list());

    // Reopened: the configuration persisted.
    Client third = Client::open(dir.string(), std::string("master secret"), smtpbridge::open_paused);
    CHECK(third.config_get("SMTPServer") == "smtp.example.com");
    CHECK(contains(third.credentials_masked(std::nullopt), "office@firm.example"));
    EXPECT_ERROR(SMTPB_ERR_BUSY, Client::open(dir.string(), std::string("wrong secret")));
    third.shutdown(1000);
    third.shutdown(1000);  // idempotent
    EXPECT_ERROR(SMTPB_ERR_STATE, third.config_get("SMTPServer"));
    third = Client::open();  // move-assignment closes the old client
    EXPECT_ERROR(SMTPB_ERR_CREDENTIALS, Client::open(dir.string(), std::string("wrong secret")));
    CHECK(third.config_export_json().size() > 0);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " PORT CLOSED_PORT\n";  // CLOSED_PORT: nothing listens there
        return 2;
    }
    const auto stamp = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    const fs::path scratch = fs::temp_directory_path() / ("smtpbridge-cpp-test-" + stamp);
    fs::create_directories(scratch);
    const fs::path attachment = fs::absolute(scratch / "note.txt");
    std::ofstream(attachment) << "A note from the C++ binding test.\n";

    try {
        test_library();
        Client client = Client::open();
        test_config(client, argv[1], argv[2]);
        test_credentials(client);
        test_blacklist(client);
        test_limits(client);
        test_send(client, attachment);
        test_diagnostics(client);
        test_outbox(client, attachment);
        test_callback_reentry();
        test_lifecycle(scratch / "data");
    } catch (const std::exception &e) {
        std::cerr << "FAILED: unexpected exception: " << e.what() << "\n";
        ++failures;
    }
    fs::remove_all(scratch);

    if (failures != 0) {
        std::cerr << failures << " check(s) failed\n";
        return 1;
    }
    std::cout << "test_smtpbridge: all checks passed (libsmtpbridge " << smtpbridge::version() << ")\n";
    return 0;
}
