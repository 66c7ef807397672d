// smtpbridge.hpp: a header-only C++17 wrapper over smtpbridge.h.
//
// A thin mirror: one method per C function declared in smtpbridge.h, named
// after it without the smtpb_ prefix. Strings go in and out as std::string
// (JSON stays JSON text; bring your own JSON library), NULL arguments are
// std::nullopt, a failed call throws smtpbridge::Error, and Client closes
// its smtpb_client when it goes out of scope.
//
//     #include "smtpbridge.hpp"
//     auto client = smtpbridge::Client::open();  // in memory
//     client.config_set("SMTPServer", "smtp.example.com");
//     std::string status = client.send(R"({"to": ["a@example.com"], "text": "Hi"})");
//
// Link with -lsmtpbridge. Functions added to smtpbridge.h later are reachable
// through Client::get() until they get a method here.
#ifndef SMTPBRIDGE_HPP
#define SMTPBRIDGE_HPP

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "smtpbridge.h"

namespace smtpbridge {

// The ABI version this wrapper is written for (SMTPB_ABI_VERSION: 1).
#ifdef SMTPB_ABI_VERSION
inline constexpr std::uint32_t abi_version_required = SMTPB_ABI_VERSION;
#else
inline constexpr std::uint32_t abi_version_required = 1;
#endif

// Flags of Client::open (SMTPB_OPEN_DEFAULT, SMTPB_OPEN_PAUSED, SMTPB_OPEN_SHARED,
// SMTPB_OPEN_SUBMIT_ONLY).
#ifdef SMTPB_OPEN_DEFAULT
inline constexpr std::uint32_t open_default = SMTPB_OPEN_DEFAULT;
inline constexpr std::uint32_t open_paused = SMTPB_OPEN_PAUSED;
inline constexpr std::uint32_t open_shared = SMTPB_OPEN_SHARED;
inline constexpr std::uint32_t open_submit_only = SMTPB_OPEN_SUBMIT_ONLY;
#else
inline constexpr std::uint32_t open_default = 0;
inline constexpr std::uint32_t open_paused = 1;
inline constexpr std::uint32_t open_shared = 2;
inline constexpr std::uint32_t open_submit_only = 4;
#endif

// A timeout without limit (UINT32_MAX ms); 0 = do not wait.
inline constexpr std::uint32_t infinite = UINT32_MAX;

// Receives each event as JSON (docs/REFERENCE.md, "Events"), on the client's event thread.
using EventCallback = std::function<void(const std::string &event_json)>;

// smtpb_abi_version: the loaded library's ABI version.
inline std::uint32_t abi_version() noexcept { return smtpb_abi_version(); }

// smtpb_abi_minor: 1 when the version 1.1 functions exist, 2 with the 1.2 ones.
inline std::uint32_t abi_minor() noexcept { return smtpb_abi_minor(); }

// smtpb_version: the loaded library's version, e.g. "1.2.0".
inline std::string version() { return smtpb_version(); }

// smtpb_result_name: "SMTPB_ERR_TLS" for 5, "SMTPB_ERR_UNKNOWN" for an unknown code.
inline const char *result_name(smtpb_result code) noexcept { return smtpb_result_name(code); }

// Frees a library string with smtpb_string_free.
struct StringFree {
    void operator()(char *s) const noexcept { smtpb_string_free(s); }
};
using String = std::unique_ptr<char, StringFree>;

// A failed smtpb_ call: its result code, and smtpb_last_error() as message().
// what() is "NAME: message".
class Error : public std::runtime_error {
public:
    Error(smtpb_result code, const std::string &message, std::optional<std::string> status = {})
        : std::runtime_error(std::string(smtpb_result_name(code)) + ": " + message),
          code_(code), message_(message), status_(std::move(status)) {}

    // The SMTPB_ERR_* code.
    smtpb_result code() const noexcept { return code_; }
    // The code's name, e.g. "SMTPB_ERR_CONNECT".
    const char *name() const noexcept { return smtpb_result_name(code_); }
    // The library's message (smtpb_last_error at the time of the failure).
    const std::string &message() const noexcept { return message_; }
    // The status JSON written by a failed send, or the report written by a
    // failed test_connection; nullopt when the call wrote none.
    const std::optional<std::string> &status() const noexcept { return status_; }

private:
    smtpb_result code_;
    std::string message_;
    std::optional<std::string> status_;
};

namespace detail {

// Throws Error for a failed result, with the thread's last error.
inline void check(smtpb_result code, std::optional<std::string> status = {}) {
    if (code != SMTPB_OK) throw Error(code, smtpb_last_error(), std::move(status));
}

// A C string for an argument; a NUL inside would silently cut it short.
inline const char *arg(const std::string &value, const char *what) {
    if (value.find('\0') != std::string::npos)
        throw Error(SMTPB_ERR_INVALID_ARGUMENT, std::string(what) + " contains a NUL character");
    return value.c_str();
}

// As arg(); nullopt is NULL.
inline const char *arg(const std::optional<std::string> &value, const char *what) {
    return value ? arg(*value, what) : nullptr;
}

inline std::optional<std::string> text(const String &s) {
    return s ? std::optional<std::string>(s.get()) : std::nullopt;
}

// Runs call(&out) and returns out as std::string, freeing it. The output
// is taken whatever the result; on failure it goes into the Error.
template <typename Call>
std::string out_string(const char *function, Call call) {
    char *raw = nullptr;
    smtpb_result code = call(&raw);
    String out(raw);
    check(code, text(out));
    if (!out)
        throw Error(SMTPB_ERR_INTERNAL, std::string(function) + " returned SMTPB_OK without its output");
    return out.get();
}

// What a Client passes as user_data of its event callback.
struct EventHook {
    EventCallback fn;
    bool orphaned = false;  // its Client let go of it while it was running
};

// The hook whose callback runs on this thread, if any.
inline thread_local EventHook *running_hook = nullptr;

// The smtpb_event_fn of every Client. An exception from the callback must
// not unwind into the library: it is caught and dropped.
inline void SMTPB_CALL dispatch_event(const char *event_json, void *user_data) noexcept {
    auto *hook = static_cast<EventHook *>(user_data);
    EventHook *outer = std::exchange(running_hook, hook);
    try {
        hook->fn(event_json);
    } catch (...) {
    }
    running_hook = outer;
    if (hook->orphaned) delete hook;
}

// Frees a hook the library no longer calls: now, or, when its callback is
// running on this thread (replaced or closed from inside), once it returns.
inline void release_hook(std::unique_ptr<EventHook> hook) noexcept {
    if (hook && hook.get() == running_hook) hook.release()->orphaned = true;
}

}  // namespace detail

// An smtpb_client: one data directory (or memory) with its configuration,
// credential store and message statuses. Move-only; closed by close() or
// the destructor. Safe to use from many threads at once, but not to close,
// move or destroy while other threads use it. Any method of a closed or
// moved-from Client throws Error(SMTPB_ERR_STATE).
class Client {
public:
    // smtpb_client_open. data_dir: absolute path, nullopt = in memory;
    // secret: master secret of the credential store, nullopt = a key file
    // in data_dir; flags: open_default or open_paused. Throws
    // std::runtime_error if the library's ABI version is not the one this
    // header is written for.
    static Client open(const std::optional<std::string> &data_dir = {},
                       const std::optional<std::string> &secret = {},
                       std::uint32_t flags = open_default) {
        if (smtpb_abi_version() != abi_version_required)
            throw std::runtime_error("libsmtpbridge has ABI version " + std::to_string(smtpb_abi_version()) +
                                     "; smtpbridge.hpp needs " + std::to_string(abi_version_required));
        smtpb_client *c = nullptr;
        detail::check(smtpb_client_open(detail::arg(data_dir, "data_dir"), detail::arg(secret, "secret"), flags, &c));
        return Client(c);
    }

    // Takes ownership of an open smtpb_client (NULL: a closed Client).
    explicit Client(smtpb_client *c) noexcept : c_(c) {}
    Client(Client &&other) noexcept
        : c_(std::exchange(other.c_, nullptr)), hook_(std::move(other.hook_)), log_hook_(std::move(other.log_hook_)) {}
    Client &operator=(Client &&other) noexcept {
        if (this != &other) {
            close();
            c_ = std::exchange(other.c_, nullptr);
            hook_ = std::move(other.hook_);
            log_hook_ = std::move(other.log_hook_);
        }
        return *this;
    }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;
    ~Client() { close(); }

    // The smtpb_client, for C functions without a method here; nullptr once closed.
    smtpb_client *get() const noexcept { return c_; }
    explicit operator bool() const noexcept { return c_ != nullptr; }

    // smtpb_client_close: shut down with SMTPShutdownGraceMs, wait for calls
    // still inside, free. Idempotent. From inside this client's event
    // callback it returns at once and completes when the callback returns.
    void close() noexcept {
        smtpb_client_close(std::exchange(c_, nullptr));
        detail::release_hook(std::move(hook_));  // after close no callback runs
        detail::release_hook(std::move(log_hook_));
    }

    // smtpb_client_shutdown: stop the client; a transaction past MAIL may
    // finish within grace_ms. Idempotent. Throws SMTPB_ERR_TIMEOUT.
    void shutdown(std::uint32_t grace_ms) { detail::check(smtpb_client_shutdown(handle(), grace_ms)); }

    // smtpb_config_set: key (Profile.Key for another profile) = value; nullopt = the default.
    void config_set(const std::string &key, const std::optional<std::string> &value) {
        detail::check(smtpb_config_set(handle(), detail::arg(key, "key"), detail::arg(value, "value")));
    }

    // smtpb_config_get: the effective value of key, defaults included.
    std::string config_get(const std::string &key) {
        return detail::out_string("smtpb_config_get", [&](char **out) {
            return smtpb_config_get(handle(), detail::arg(key, "key"), out);
        });
    }

    // smtpb_config_import_keys: Key=Value lines, all or nothing.
    void config_import_keys(const std::string &lines) {
        detail::check(smtpb_config_import_keys(handle(), detail::arg(lines, "lines")));
    }

    // smtpb_config_load_json: replace the whole configuration.
    void config_load_json(const std::string &json) {
        detail::check(smtpb_config_load_json(handle(), detail::arg(json, "json")));
    }

    // smtpb_config_export_json: the configuration as JSON, without secrets.
    std::string config_export_json() {
        return detail::out_string("smtpb_config_export_json",
                                  [&](char **out) { return smtpb_config_export_json(handle(), out); });
    }

    // smtpb_credentials_set: username and password of user_id (nullopt = shared).
    void credentials_set(const std::optional<std::string> &user_id, const std::string &username,
                         const std::string &password) {
        detail::check(smtpb_credentials_set(handle(), detail::arg(user_id, "user_id"),
                                            detail::arg(username, "username"), detail::arg(password, "password")));
    }

    // smtpb_credentials_set_oauth2: an access token of user_id (nullopt =
    // shared); expires_at in Unix seconds, 0 = unknown.
    void credentials_set_oauth2(const std::optional<std::string> &user_id, const std::string &username,
                                const std::string &access_token, std::int64_t expires_at = 0) {
        detail::check(smtpb_credentials_set_oauth2(handle(), detail::arg(user_id, "user_id"),
                                                   detail::arg(username, "username"),
                                                   detail::arg(access_token, "access_token"), expires_at));
    }

    // smtpb_credentials_remove: forget the credential of user_id (nullopt = shared).
    void credentials_remove(const std::optional<std::string> &user_id) {
        detail::check(smtpb_credentials_remove(handle(), detail::arg(user_id, "user_id")));
    }

    // smtpb_credentials_masked: the credential of user_id as JSON, without its secret.
    std::string credentials_masked(const std::optional<std::string> &user_id) {
        return detail::out_string("smtpb_credentials_masked", [&](char **out) {
            return smtpb_credentials_masked(handle(), detail::arg(user_id, "user_id"), out);
        });
    }

    // smtpb_oauth2_begin (1.1): start a sign-in of user_id (nullopt =
    // shared) with the profile's OAuth2 settings; kind "browser" or
    // "device". Returns {"flow_id", "kind", "authorize_url", ...}.
    std::string oauth2_begin(const std::optional<std::string> &profile, const std::optional<std::string> &user_id,
                             const std::string &kind = "browser") {
        return detail::out_string("smtpb_oauth2_begin", [&](char **out) {
            return smtpb_oauth2_begin(handle(), detail::arg(profile, "profile"), detail::arg(user_id, "user_id"),
                                      detail::arg(kind, "kind"), out);
        });
    }

    // smtpb_oauth2_complete (1.1): wait up to timeout_ms; the masked
    // credential. Error SMTPB_ERR_TIMEOUT: not finished yet, call again.
    std::string oauth2_complete(const std::string &flow_id, std::uint32_t timeout_ms) {
        return detail::out_string("smtpb_oauth2_complete", [&](char **out) {
            return smtpb_oauth2_complete(handle(), detail::arg(flow_id, "flow_id"), timeout_ms, out);
        });
    }

    // smtpb_oauth2_cancel (1.1): stop a sign-in; nothing is stored.
    void oauth2_cancel(const std::string &flow_id) {
        detail::check(smtpb_oauth2_cancel(handle(), detail::arg(flow_id, "flow_id")));
    }

    // smtpb_credentials_set_oauth2_refresh (1.1): a refresh token the host
    // obtained itself (e.g. with MSAL); username may be "".
    void credentials_set_oauth2_refresh(const std::optional<std::string> &user_id, const std::string &username,
                                        const std::string &refresh_token) {
        detail::check(smtpb_credentials_set_oauth2_refresh(handle(), detail::arg(user_id, "user_id"),
                                                           detail::arg(username, "username"),
                                                           detail::arg(refresh_token, "refresh_token")));
    }

    // smtpb_send: send message_json now; returns the status JSON. On
    // failure the Error carries the status when the message was recorded.
    std::string send(const std::string &message_json) {
        return detail::out_string("smtpb_send", [&](char **out) {
            return smtpb_send(handle(), detail::arg(message_json, "message_json"), out);
        });
    }

    // smtpb_status: the status JSON of message id.
    std::string status(const std::string &id) {
        return detail::out_string("smtpb_status",
                                  [&](char **out) { return smtpb_status(handle(), detail::arg(id, "id"), out); });
    }

    // smtpb_enqueue: validate message_json, read its attachments, make it
    // durable in the outbox; returns its id.
    std::string enqueue(const std::string &message_json) {
        return detail::out_string("smtpb_enqueue", [&](char **out) {
            return smtpb_enqueue(handle(), detail::arg(message_json, "message_json"), out);
        });
    }

    // smtpb_render (1.2): the MIME (.eml text, CRLF line ends) message_json
    // would be sent as, after profile choice, test mode and DKIM; nothing
    // is sent or recorded.
    std::string render(const std::string &message_json) {
        return detail::out_string("smtpb_render", [&](char **out) {
            return smtpb_render(handle(), detail::arg(message_json, "message_json"), out);
        });
    }

    // smtpb_validate (1.2): checks message_json and the settings it would
    // use, sending nothing; throws Error naming what is wrong.
    void validate(const std::string &message_json) {
        detail::check(smtpb_validate(handle(), detail::arg(message_json, "message_json")));
    }

    // smtpb_merge: one message per recipient of recipients_json from
    // template_json, queued as one batch; returns {"batch_id", "ids", "count"}.
    std::string merge(const std::string &template_json, const std::string &recipients_json) {
        return detail::out_string("smtpb_merge", [&](char **out) {
            return smtpb_merge(handle(), detail::arg(template_json, "template_json"),
                               detail::arg(recipients_json, "recipients_json"), out);
        });
    }

    // smtpb_test_connection: connect, EHLO, TLS, AUTH, QUIT; returns the
    // report JSON. On failure the Error carries the report, if written.
    std::string test_connection(const std::optional<std::string> &profile = {},
                                const std::optional<std::string> &user_id = {}) {
        return detail::out_string("smtpb_test_connection", [&](char **out) {
            return smtpb_test_connection(handle(), detail::arg(profile, "profile"), detail::arg(user_id, "user_id"),
                                         out);
        });
    }

    // smtpb_transcript: the redacted dialogue of message id's attempts, as a
    // JSON array, oldest first.
    std::string transcript(const std::string &id) {
        return detail::out_string("smtpb_transcript",
                                  [&](char **out) { return smtpb_transcript(handle(), detail::arg(id, "id"), out); });
    }

    // smtpb_probe: try host on 465 (SSL), 587 (TLS) and 25 (TLS, then plain);
    // returns {"host", "results", "suggested"}. When nothing works the Error
    // carries the report.
    std::string probe(const std::string &host) {
        return detail::out_string("smtpb_probe",
                                  [&](char **out) { return smtpb_probe(handle(), detail::arg(host, "host"), out); });
    }

    // smtpb_batch_status: the counts of a batch's messages per state, as JSON.
    std::string batch_status(const std::string &batch_id) {
        return detail::out_string("smtpb_batch_status", [&](char **out) {
            return smtpb_batch_status(handle(), detail::arg(batch_id, "batch_id"), out);
        });
    }

    // smtpb_outbox_list: the statuses in state (nullopt = all), oldest first, as a JSON array.
    std::string outbox_list(const std::optional<std::string> &state = {}) {
        return detail::out_string("smtpb_outbox_list", [&](char **out) {
            return smtpb_outbox_list(handle(), detail::arg(state, "state"), out);
        });
    }

    // smtpb_outbox_query (1.1): one page of statuses, newest first, as JSON
    // {"items": [...], "next_cursor": "..." | null}. query_json: {"state": [...],
    // "batch_id", "reference", "reference_prefix", "profile", "since", "until",
    // "limit", "cursor"}, every field optional.
    std::string outbox_query(const std::string &query_json = "{}") {
        return detail::out_string("smtpb_outbox_query", [&](char **out) {
            return smtpb_outbox_query(handle(), detail::arg(query_json, "query_json"), out);
        });
    }

    // smtpb_outbox_purge (1.1): purges final statuses created before `before`
    // (RFC 3339 UTC) in the states states_json lists (a JSON array; nullopt =
    // sent, cancelled, failed); returns {"purged": n}.
    std::string outbox_purge(const std::string &before, const std::optional<std::string> &states_json = {}) {
        return detail::out_string("smtpb_outbox_purge", [&](char **out) {
            return smtpb_outbox_purge(handle(), detail::arg(before, "before"), detail::arg(states_json, "states_json"), out);
        });
    }

    // smtpb_outbox_stats: counts per state, paused profiles and send limits, as JSON.
    std::string outbox_stats() {
        return detail::out_string("smtpb_outbox_stats", [&](char **out) { return smtpb_outbox_stats(handle(), out); });
    }

    // smtpb_wait: wait up to timeout_ms (infinite = no limit) for message id
    // to be sent, failed or cancelled; returns its status JSON. Throws
    // SMTPB_ERR_TIMEOUT if it is not final in time.
    std::string wait(const std::string &id, std::uint32_t timeout_ms) {
        return detail::out_string("smtpb_wait", [&](char **out) {
            return smtpb_wait(handle(), detail::arg(id, "id"), timeout_ms, out);
        });
    }

    // smtpb_flush: wait up to timeout_ms until nothing is queued (in a profile
    // not paused) or sending. Throws SMTPB_ERR_TIMEOUT.
    void flush(std::uint32_t timeout_ms) { detail::check(smtpb_flush(handle(), timeout_ms)); }

    // smtpb_cancel: cancel a queued or deferred message.
    void cancel(const std::string &id) { detail::check(smtpb_cancel(handle(), detail::arg(id, "id"))); }

    // smtpb_batch_cancel: cancel what can be of a batch; returns {"cancelled", "sending", "sent"}.
    std::string batch_cancel(const std::string &batch_id) {
        return detail::out_string("smtpb_batch_cancel", [&](char **out) {
            return smtpb_batch_cancel(handle(), detail::arg(batch_id, "batch_id"), out);
        });
    }

    // smtpb_retry: hand a failed message back to the outbox, or make a deferred one due now.
    void retry(const std::string &id) { detail::check(smtpb_retry(handle(), detail::arg(id, "id"))); }

    // smtpb_outbox_pause: hold delivery of profile (nullopt = all); persisted.
    void outbox_pause(const std::optional<std::string> &profile = {}) {
        detail::check(smtpb_outbox_pause(handle(), detail::arg(profile, "profile")));
    }

    // smtpb_outbox_resume: resume delivery of profile (nullopt = all, and open_paused).
    void outbox_resume(const std::optional<std::string> &profile = {}) {
        detail::check(smtpb_outbox_resume(handle(), detail::arg(profile, "profile")));
    }

    // smtpb_limits_reset: reset the send-limit counters of profile (nullopt = every profile).
    void limits_reset(const std::optional<std::string> &profile = {}) {
        detail::check(smtpb_limits_reset(handle(), detail::arg(profile, "profile")));
    }

    // smtpb_blacklist_add: block an address, or a domain as "@example.com".
    void blacklist_add(const std::string &entry) {
        detail::check(smtpb_blacklist_add(handle(), detail::arg(entry, "entry")));
    }

    // smtpb_blacklist_remove: unblock an entry.
    void blacklist_remove(const std::string &entry) {
        detail::check(smtpb_blacklist_remove(handle(), detail::arg(entry, "entry")));
    }

    // smtpb_blacklist_list: the blacklist as a JSON array of strings.
    std::string blacklist_list() {
        return detail::out_string("smtpb_blacklist_list",
                                  [&](char **out) { return smtpb_blacklist_list(handle(), out); });
    }

    // smtpb_set_event_callback: call fn with each event's JSON on the client's
    // event thread, one at a time; an empty fn stops events. When this
    // returns the previous fn is not running (unless this is called from
    // inside it: then it finishes normally) and never runs again. fn may
    // call this client, close() included; an exception it throws is dropped.
    void set_event_callback(EventCallback fn) {
        set_event_hook(std::move(fn), [](smtpb_client *c, smtpb_event_fn f, void *data) {
            return smtpb_set_event_callback(c, f, data);
        });
    }

    // smtpb_set_event_callback_all: as set_event_callback, for every message
    // of the data_dir, also those other clients and processes queued.
    void set_event_callback_all(EventCallback fn) {
        set_event_hook(std::move(fn), [](smtpb_client *c, smtpb_event_fn f, void *data) {
            return smtpb_set_event_callback_all(c, f, data);
        });
    }

  private:
    // Replaces the event hook through `set` (one of the two setters above).
    template <typename Setter> void set_event_hook(EventCallback fn, Setter set) {
        std::unique_ptr<detail::EventHook> hook;
        if (fn) hook.reset(new detail::EventHook{std::move(fn)});
        detail::check(set(handle(), hook ? detail::dispatch_event : nullptr, hook.get()));
        detail::release_hook(std::exchange(hook_, std::move(hook)));
    }

  public:

    // smtpb_set_log_callback: call fn with each log line's JSON ({"time",
    // "level", "target", "message", "id", "profile"}) at or above min_level
    // (1 error, 2 warn, 3 info, 4 debug, 5 trace) on the client's event
    // thread; an empty fn stops the lines. The rules of set_event_callback
    // apply.
    void set_log_callback(EventCallback fn, int32_t min_level = 3) {
        std::unique_ptr<detail::EventHook> hook;
        if (fn) hook.reset(new detail::EventHook{std::move(fn)});
        detail::check(
            smtpb_set_log_callback(handle(), hook ? detail::dispatch_event : nullptr, min_level, hook.get()));
        detail::release_hook(std::exchange(log_hook_, std::move(hook)));
    }

private:
    smtpb_client *handle() const {
        if (c_ == nullptr) throw Error(SMTPB_ERR_STATE, "the client is closed");
        return c_;
    }

    smtpb_client *c_ = nullptr;
    std::unique_ptr<detail::EventHook> hook_;      // user_data of the event callback
    std::unique_ptr<detail::EventHook> log_hook_;  // user_data of the log callback
};

}  // namespace smtpbridge

#endif  // SMTPBRIDGE_HPP
