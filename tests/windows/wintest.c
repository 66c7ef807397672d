/* What differs on Windows, checked from a Windows program (run under Wine
 * by scripts/windows/test.sh, against the loopback servers of
 * tests/windows/servers.py):
 *
 *   wintest store TAG PLAIN_PORT      data_dir and attachment on C:\ paths
 *       with non-ASCII names (given in UTF-8), credentials stored and read
 *       back masked, a message queued while paused survives close + reopen
 *       and is sent, a second open of a held data_dir is SMTPB_ERR_BUSY
 *       naming the holder's user (exclusive or SMTPB_OPEN_SHARED), two shared
 *       clients of one data_dir open and one holds the delivery lease, log
 *       and event callbacks (SMTPB_CALL) fire.
 *   wintest tls TAG TLS_PORT CA_PEM   STARTTLS + AUTH: refused with
 *       SMTPB_ERR_TLS while the test CA is trusted nowhere, sent with
 *       SMTPCaFile = CA_PEM (a C:\ path).
 *   wintest root-add CA_PEM | root-remove CA_PEM   the test CA into the
 *       current user's ROOT certificate store / every "smtpbridge test CA"
 *       out of it.
 *   wintest tls-root TAG TLS_PORT     sent with the CA only in the ROOT store.
 *   wintest graph TAG GRAPH_URL TOKEN CA_PEM   a send through Microsoft
 *       Graph (SMTPTransport=Graph over HTTPS, SMTPCaFile, a host-supplied
 *       access token).
 *   wintest version FILE VERSION      FILE's version resource (read with
 *       GetFileVersionInfoW) names VERSION and the product.
 *   wintest keyfile TAG               master.key with a NULL secret: a DPAPI
 *       blob (not the key), read back at reopen; SMTPMasterKeyScope=Machine
 *       re-protects it in machine scope; a 1.1 raw key file is migrated and
 *       its credentials still open; a changed blob (and, if Wine can show
 *       it, another account's) is SMTPB_ERR_CREDENTIALS naming the file; the
 *       data_dir in the profile gets an owner-only ACL, one outside does not.
 *
 * Prints one "ok:" line per check; a failed check prints "FAIL:" with the
 * library's last error and exits 1. What the servers received is checked
 * by tests/windows/check_mail.py. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <wincrypt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtpbridge.h"

static int failures = 0;

static void check(int ok, const char *what, smtpb_result rc) {
    if (ok) {
        printf("ok: %s\n", what);
    } else {
        printf("FAIL: %s (result %s, last error: %s)\n", what, smtpb_result_name(rc), smtpb_last_error());
        failures++;
    }
    fflush(stdout);
}

static int test_shared(const char *base);

/* A UTF-8 copy of a wide string (malloc'd). */
static char *utf8(const wchar_t *wide) {
    int n = WideCharToMultiByte(CP_UTF8, 0, wide, -1, NULL, 0, NULL, NULL);
    char *out = n > 0 ? malloc((size_t)n) : NULL;
    if (out == NULL || WideCharToMultiByte(CP_UTF8, 0, wide, -1, out, n, NULL, NULL) != n) {
        fprintf(stderr, "WideCharToMultiByte failed\n");
        exit(2);
    }
    return out;
}

/* A wide copy of a UTF-8 string (malloc'd). */
static wchar_t *wide(const char *text) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text, -1, NULL, 0);
    wchar_t *out = n > 0 ? malloc((size_t)n * sizeof *out) : NULL;
    if (out == NULL || MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text, -1, out, n) != n) {
        fprintf(stderr, "MultiByteToWideChar failed\n");
        exit(2);
    }
    return out;
}

/* %LOCALAPPDATA% (C:\users\<user>\AppData\Local) in UTF-8, plus `tail`. */
static char *local_app_data(const char *tail) {
    wchar_t folder[MAX_PATH];
    DWORD n = GetEnvironmentVariableW(L"LOCALAPPDATA", folder, MAX_PATH);
    char *base, *out;
    if (n == 0 || n >= MAX_PATH) {
        fprintf(stderr, "LOCALAPPDATA is not set\n");
        exit(2);
    }
    base = utf8(folder);
    out = malloc(strlen(base) + strlen(tail) + 2);
    if (out == NULL) exit(2);
    sprintf(out, "%s\\%s", base, tail);
    free(base);
    return out;
}

/* Deletes a folder and everything in it (SHFileOperation-free). */
static void remove_tree(const wchar_t *dir) {
    wchar_t pattern[MAX_PATH], path[MAX_PATH];
    WIN32_FIND_DATAW found;
    HANDLE h;
    _snwprintf(pattern, MAX_PATH, L"%ls\\*", dir);
    h = FindFirstFileW(pattern, &found);
    if (h != INVALID_HANDLE_VALUE) {
        do {
            if (wcscmp(found.cFileName, L".") == 0 || wcscmp(found.cFileName, L"..") == 0) continue;
            _snwprintf(path, MAX_PATH, L"%ls\\%ls", dir, found.cFileName);
            if (found.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) {
                remove_tree(path);
            } else {
                DeleteFileW(path);
            }
        } while (FindNextFileW(h, &found));
        FindClose(h);
    }
    RemoveDirectoryW(dir);
}

/* The callbacks: they count, and signal an event once a message is sent. */
typedef struct {
    volatile LONG log_lines;
    volatile LONG events;
    HANDLE sent;
} observed;

static void SMTPB_CALL on_log(const char *line_json, void *user_data) {
    observed *o = user_data;
    if (line_json != NULL && strstr(line_json, "\"level\"") != NULL) InterlockedIncrement(&o->log_lines);
}

static void SMTPB_CALL on_event(const char *event_json, void *user_data) {
    observed *o = user_data;
    InterlockedIncrement(&o->events);
    if (strstr(event_json, "\"state\":\"sent\"") != NULL || strstr(event_json, "\"state\": \"sent\"") != NULL) {
        SetEvent(o->sent);
    }
}

static smtpb_result set(smtpb_client *c, const char *key, const char *value) {
    smtpb_result rc = smtpb_config_set(c, key, value);
    if (rc != SMTPB_OK) printf("config_set %s=%s: %s (%s)\n", key, value, smtpb_result_name(rc), smtpb_last_error());
    return rc;
}

static int store(const char *tag, const char *port) {
    /* "Jürgen-€" and "Rechnung Müller €.txt", in UTF-8 for the library and
     * as UTF-16 for the Windows API that makes the attachment. */
    char name[128], subject[128], message[2048];
    char *dir, *attachment, *masked = NULL, *id = NULL, *status = NULL;
    wchar_t *wdir, *wattachment;
    smtpb_client *c = NULL, *second = NULL;
    smtpb_result rc;
    observed o = {0, 0, NULL};
    HANDLE file;
    DWORD written;
    static const char content[] = "Rechnung 2026-118\r\nBetrag: 1.250,00 EUR\r\n";

    snprintf(name, sizeof name, "smtpbridge-J\xc3\xbcrgen-\xe2\x82\xac-%s", tag);
    dir = local_app_data(name);
    wdir = wide(dir);
    remove_tree(wdir);
    /* The attachment in a folder "<data_dir>-Anhänge" beside the data_dir. */
    attachment = malloc(strlen(dir) + 64);
    if (attachment == NULL) return 2;
    sprintf(attachment, "%s-Anh\xc3\xa4nge", dir);
    wattachment = wide(attachment);
    CreateDirectoryW(wattachment, NULL);
    free(wattachment);
    strcat(attachment, "\\Rechnung M\xc3\xbcller \xe2\x82\xac.txt");
    wattachment = wide(attachment);
    file = CreateFileW(wattachment, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    check(file != INVALID_HANDLE_VALUE && WriteFile(file, content, sizeof content - 1, &written, NULL) &&
              written == sizeof content - 1,
          "the attachment written with CreateFileW at a non-ASCII C:\\ path", SMTPB_OK);
    if (file != INVALID_HANDLE_VALUE) CloseHandle(file);
    printf("data_dir: %s\n", dir);

    rc = smtpb_client_open(dir, NULL, SMTPB_OPEN_PAUSED, &c);
    check(rc == SMTPB_OK && c != NULL, "open (paused) a data_dir on a non-ASCII C:\\ path", rc);
    if (c == NULL) return 1;
    check(set(c, "SMTPServer", "127.0.0.1") == SMTPB_OK && set(c, "SMTPServerPort", port) == SMTPB_OK &&
              set(c, "SMTPAuthentication", "None") == SMTPB_OK,
          "configure the plain server", SMTPB_OK);
    rc = smtpb_credentials_set(c, "emp-42", "anna", "s3cret-windows");
    check(rc == SMTPB_OK, "store a credential", rc);
    rc = smtpb_credentials_masked(c, "emp-42", &masked);
    check(rc == SMTPB_OK && strstr(masked, "anna") != NULL && strstr(masked, "s3cret") == NULL,
          "read the credential back masked", rc);
    smtpb_string_free(masked);

    rc = smtpb_client_open(dir, NULL, SMTPB_OPEN_DEFAULT, &second);
    check(rc == SMTPB_ERR_BUSY && second == NULL && strstr(smtpb_last_error(), "pid") != NULL &&
              strstr(smtpb_last_error(), "user ") != NULL && strstr(smtpb_last_error(), "unknown") == NULL,
          "a second open of the held data_dir is SMTPB_ERR_BUSY naming the holder and its user", rc);
    printf("  (%s)\n", smtpb_last_error());
    if (second != NULL) smtpb_client_close(second);
    rc = smtpb_client_open(dir, NULL, SMTPB_OPEN_SHARED, &second);
    check(rc == SMTPB_ERR_BUSY && second == NULL,
          "a shared open of an exclusively held data_dir is SMTPB_ERR_BUSY (LockFileEx shared vs exclusive)", rc);
    if (second != NULL) smtpb_client_close(second);
    check(test_shared(dir) == 0, "two shared clients of one data_dir: one holds the delivery lease", SMTPB_OK);

    snprintf(subject, sizeof subject, "Windows outbox across reopen (%s)", tag);
    snprintf(message, sizeof message,
             "{\"from\": {\"email\": \"anna@firm.example\"}, \"to\": [{\"email\": \"client@example.com\"}],"
             " \"subject\": \"%s\", \"text\": \"queued while paused\","
             " \"attachments\": [{\"path\": \"%s\"}]}",
             subject, attachment);
    /* JSON needs the backslashes of the path doubled. */
    {
        char escaped[2048], *out = escaped;
        const char *in;
        for (in = message; *in != '\0' && out < escaped + sizeof escaped - 2; in++) {
            if (*in == '\\') *out++ = '\\';
            *out++ = *in;
        }
        *out = '\0';
        strcpy(message, escaped);
    }
    rc = smtpb_enqueue(c, message, &id);
    check(rc == SMTPB_OK && id != NULL, "enqueue while paused", rc);
    smtpb_client_close(c);
    c = NULL;

    o.sent = CreateEventW(NULL, TRUE, FALSE, NULL);
    rc = smtpb_client_open(dir, NULL, SMTPB_OPEN_DEFAULT, &c);
    check(rc == SMTPB_OK && c != NULL, "reopen the data_dir (delivering)", rc);
    if (c == NULL) return 1;
    rc = smtpb_set_log_callback(c, on_log, 3, &o);
    check(rc == SMTPB_OK, "set a log callback", rc);
    rc = smtpb_set_event_callback(c, on_event, &o);
    check(rc == SMTPB_OK, "set an event callback", rc);
    rc = smtpb_config_get(c, "SMTPServerPort", &masked);
    check(rc == SMTPB_OK && strcmp(masked, port) == 0, "the configuration persisted across reopen", rc);
    smtpb_string_free(masked);
    rc = smtpb_credentials_masked(c, "emp-42", &masked);
    check(rc == SMTPB_OK && strstr(masked, "anna") != NULL, "the credential persisted across reopen", rc);
    smtpb_string_free(masked);
    if (id != NULL) {
        rc = smtpb_wait(c, id, 60000, &status);
        check(rc == SMTPB_OK && strstr(status, "\"sent\"") != NULL, "the message queued before the reopen is sent", rc);
        smtpb_string_free(status);
    }
    check(WaitForSingleObject(o.sent, 30000) == WAIT_OBJECT_0, "the event callback reported it sent", SMTPB_OK);
    /* Log lines are delivered on the event thread too; wait for one. */
    {
        DWORD deadline = GetTickCount() + 30000;
        while (o.log_lines == 0 && (LONG)(deadline - GetTickCount()) > 0) Sleep(20);
    }
    check(o.log_lines > 0, "the log callback got lines", SMTPB_OK);
    printf("  (%ld log lines, %ld events)\n", (long)o.log_lines, (long)o.events);
    smtpb_set_log_callback(c, NULL, 3, NULL);
    smtpb_set_event_callback(c, NULL, NULL);
    smtpb_client_close(c);
    CloseHandle(o.sent);
    smtpb_string_free(id);
    free(attachment);
    free(wattachment);
    free(wdir);
    free(dir);
    return failures != 0;
}

static char tls_error[2048];

/* One STARTTLS + AUTH send with the credential of the tls server; returns its result. */
static smtpb_result tls_send(const char *port, const char *ca_file, const char *subject) {
    smtpb_client *c = NULL;
    char *status = NULL, message[512];
    smtpb_result rc = smtpb_client_open(NULL, NULL, SMTPB_OPEN_DEFAULT, &c);
    if (rc != SMTPB_OK) return rc;
    if ((rc = set(c, "SMTPServer", "127.0.0.1")) != SMTPB_OK || (rc = set(c, "SMTPServerPort", port)) != SMTPB_OK ||
        (rc = set(c, "SMTPServerEncryption", "STARTTLS")) != SMTPB_OK ||
        (rc = set(c, "SMTPAuthentication", "Required")) != SMTPB_OK ||
        (ca_file != NULL && (rc = set(c, "SMTPCaFile", ca_file)) != SMTPB_OK) ||
        (rc = smtpb_credentials_set(c, NULL, "anna", "s3cret")) != SMTPB_OK) {
        smtpb_client_close(c);
        return rc;
    }
    snprintf(message, sizeof message,
             "{\"from\": {\"email\": \"anna@firm.example\"}, \"to\": [{\"email\": \"client@example.com\"}],"
             " \"subject\": \"%s\", \"text\": \"over STARTTLS\"}",
             subject);
    rc = smtpb_send(c, message, &status);
    /* Kept: smtpb_client_close clears the thread's last error. */
    snprintf(tls_error, sizeof tls_error, "%s", rc == SMTPB_OK ? "" : smtpb_last_error());
    if (rc != SMTPB_OK) printf("  (send: %s: %s)\n", smtpb_result_name(rc), tls_error);
    smtpb_string_free(status);
    smtpb_client_close(c);
    return rc;
}

static int tls(const char *tag, const char *port, const char *ca_file, int with_file) {
    char subject[128];
    smtpb_result rc;
    if (with_file) {
        snprintf(subject, sizeof subject, "Windows untrusted (%s)", tag);
        rc = tls_send(port, NULL, subject);
        check(rc == SMTPB_ERR_TLS && strstr(tls_error, "UnknownIssuer") != NULL && strstr(tls_error, "SMTPCaFile") != NULL,
              "a server whose CA is trusted nowhere is refused with SMTPB_ERR_TLS, the error advising SMTPCaFile", rc);
        snprintf(subject, sizeof subject, "Windows STARTTLS with SMTPCaFile (%s)", tag);
        rc = tls_send(port, ca_file, subject);
        check(rc == SMTPB_OK, "STARTTLS + AUTH with SMTPCaFile on a C:\\ path", rc);
    } else {
        snprintf(subject, sizeof subject, "Windows STARTTLS with the ROOT store (%s)", tag);
        rc = tls_send(port, NULL, subject);
        check(rc == SMTPB_OK, "STARTTLS + AUTH with the CA only in the Windows ROOT store", rc);
    }
    return failures != 0;
}

static int graph(const char *tag, const char *url, const char *token, const char *ca_file) {
    smtpb_client *c = NULL;
    char *status = NULL, message[512];
    smtpb_result rc = smtpb_client_open(NULL, NULL, SMTPB_OPEN_DEFAULT, &c);
    check(rc == SMTPB_OK, "open an in-memory client", rc);
    if (c == NULL) return 1;
    check(set(c, "SMTPTransport", "Graph") == SMTPB_OK && set(c, "SMTPGraphUrl", url) == SMTPB_OK &&
              set(c, "SMTPAuthModel", "OAuth2") == SMTPB_OK && set(c, "SMTPOAuth2Provider", "Microsoft") == SMTPB_OK &&
              set(c, "SMTPCaFile", ca_file) == SMTPB_OK,
          "configure a Graph profile", SMTPB_OK);
    rc = smtpb_credentials_set_oauth2(c, "emp-42", "anna@firm.example", token, (int64_t)time(NULL) + 3600);
    check(rc == SMTPB_OK, "store a host-supplied access token", rc);
    snprintf(message, sizeof message,
             "{\"from\": {\"email\": \"anna@firm.example\"}, \"to\": [{\"email\": \"client@example.com\"}],"
             " \"user\": \"emp-42\", \"subject\": \"Windows Graph send (%s)\", \"text\": \"through Graph\"}",
             tag);
    rc = smtpb_send(c, message, &status);
    check(rc == SMTPB_OK && strstr(status, "\"sent\"") != NULL, "sent through Microsoft Graph over HTTPS", rc);
    smtpb_string_free(status);
    smtpb_client_close(c);
    return failures != 0;
}

/* Adds (add != 0) or removes the PEM certificate in `path` to/from the
 * current user's ROOT store. */
static int root_store(const char *path, int add) {
    FILE *f = fopen(path, "rb");
    char pem[8192];
    size_t n = f ? fread(pem, 1, sizeof pem - 1, f) : 0;
    BYTE der[4096];
    DWORD der_len = sizeof der;
    HCERTSTORE store;
    PCCERT_CONTEXT cert = NULL, existing;
    BOOL ok;
    if (f) fclose(f);
    pem[n] = '\0';
    if (n == 0 || !CryptStringToBinaryA(pem, 0, CRYPT_STRING_BASE64HEADER, der, &der_len, NULL, NULL)) {
        printf("FAIL: cannot read the PEM certificate %s\n", path);
        return 1;
    }
    /* Removal goes to the registry store itself: Wine's ROOT system store
     * shows it through a read-only view, where a delete does not last. */
    store = CertOpenStore(add ? CERT_STORE_PROV_SYSTEM_W : CERT_STORE_PROV_SYSTEM_REGISTRY_W, 0, 0,
                          CERT_SYSTEM_STORE_CURRENT_USER, L"ROOT");
    if (store == NULL) {
        printf("FAIL: CertOpenStore ROOT: error %lu\n", (unsigned long)GetLastError());
        return 1;
    }
    if (add) {
        ok = CertAddEncodedCertificateToStore(store, X509_ASN_ENCODING, der, der_len, CERT_STORE_ADD_REPLACE_EXISTING,
                                              NULL);
        check(ok, "the test CA added to the current user's ROOT store", SMTPB_OK);
    } else {
        /* Every test CA of earlier runs too (same name, another key). */
        int removed = 0;
        ok = TRUE;
        while ((existing = CertFindCertificateInStore(store, X509_ASN_ENCODING, 0, CERT_FIND_SUBJECT_STR_W,
                                                      L"smtpbridge test CA", NULL)) != NULL) {
            if (!CertDeleteCertificateFromStore(existing)) {
                ok = FALSE;
                break;
            }
            removed++;
        }
        check(ok, "every test CA removed from the current user's ROOT store", SMTPB_OK);
        printf("  (%d removed)\n", removed);
        (void)cert;
    }
    CertCloseStore(store, 0);
    return failures != 0;
}

/* One string of a version resource's StringFileInfo (040904B0). */
static const wchar_t *version_string(void *info, const wchar_t *name) {
    wchar_t query[128];
    void *value = NULL;
    UINT len = 0;
    _snwprintf(query, 128, L"\\StringFileInfo\\040904B0\\%ls", name);
    return VerQueryValueW(info, query, &value, &len) && len > 0 ? value : L"";
}

static int version(const char *file, const char *expected) {
    wchar_t *wfile = wide(file), *wexpected = wide(expected);
    DWORD ignored = 0, size = GetFileVersionInfoSizeW(wfile, &ignored);
    void *info = size ? malloc(size) : NULL;
    VS_FIXEDFILEINFO *fixed = NULL;
    UINT len = 0;
    char what[512];
    unsigned major = 0, minor = 0, patch = 0;
    if (info == NULL || !GetFileVersionInfoW(wfile, 0, size, info)) {
        printf("FAIL: %s has no version resource (error %lu)\n", file, (unsigned long)GetLastError());
        return 1;
    }
    sscanf(expected, "%u.%u.%u", &major, &minor, &patch);
    check(VerQueryValueW(info, L"\\", (void **)&fixed, &len) && fixed != NULL &&
              fixed->dwFileVersionMS == ((major << 16) | minor) && fixed->dwFileVersionLS == (patch << 16) &&
              fixed->dwProductVersionMS == fixed->dwFileVersionMS,
          "the fixed FILEVERSION and PRODUCTVERSION are the library version", SMTPB_OK);
    snprintf(what, sizeof what, "%s: FileVersion and ProductVersion are %s", file, expected);
    check(wcscmp(version_string(info, L"FileVersion"), wexpected) == 0 &&
              wcscmp(version_string(info, L"ProductVersion"), wexpected) == 0,
          what, SMTPB_OK);
    check(wcscmp(version_string(info, L"ProductName"), L"smtpbridge") == 0 &&
              wcslen(version_string(info, L"CompanyName")) > 0 && wcslen(version_string(info, L"FileDescription")) > 0 &&
              wcslen(version_string(info, L"LegalCopyright")) > 0,
          "ProductName, CompanyName, FileDescription and LegalCopyright are set", SMTPB_OK);
    printf("  (FileDescription: %ls)\n", version_string(info, L"FileDescription"));
    free(info);
    free(wfile);
    free(wexpected);
    return failures != 0;
}

/* ---- master.key: DPAPI and ACLs (wintest keyfile) ---- */

static const char key_magic[] = "smtpbridge-master-key 2 ";
/* DPAPI's provider GUID, as Windows writes it at offset 4 of a blob. */
static const BYTE windows_provider[16] = {0xd0, 0x8c, 0x9d, 0xdf, 0x01, 0x15, 0xd1, 0x11,
                                          0x8c, 0x7a, 0x00, 0xc0, 0x4f, 0xc2, 0x97, 0xeb};

/* Reads a whole file (at most 64 KiB) into buf; returns its length or -1. */
static long read_file(const char *path, char *buf, long size) {
    wchar_t *wpath = wide(path);
    HANDLE h = CreateFileW(wpath, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    DWORD n = 0;
    free(wpath);
    if (h == INVALID_HANDLE_VALUE) return -1;
    if (!ReadFile(h, buf, (DWORD)size - 1, &n, NULL)) n = 0;
    CloseHandle(h);
    buf[n] = '\0';
    return (long)n;
}

static int write_file(const char *path, const char *bytes, DWORD len) {
    wchar_t *wpath = wide(path);
    HANDLE h = CreateFileW(wpath, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    DWORD n = 0;
    free(wpath);
    if (h == INVALID_HANDLE_VALUE) return 0;
    WriteFile(h, bytes, len, &n, NULL);
    CloseHandle(h);
    return n == len;
}

static int contains(const char *hay, long hay_len, const BYTE *needle, long len) {
    long i;
    for (i = 0; i + len <= hay_len; i++) {
        if (memcmp(hay + i, needle, (size_t)len) == 0) return 1;
    }
    return 0;
}

/* Checks master.key in dir: the header names `scope`, the rest is a DPAPI
 * blob that opens (with the library's entropy) to a 64-hex-digit key found
 * nowhere in the file, neither as hex nor as bytes. Copies the key to
 * key_out (65 bytes) and the blob to blob_out. */
static void check_protected(const char *dir, const char *scope, char *key_out, BYTE *blob_out, DWORD *blob_len) {
    char path[1024], file[8192], header[128], what[256];
    BYTE raw[32];
    long n, i;
    DATA_BLOB in, out = {0, NULL}, entropy;
    const char *body;
    snprintf(path, sizeof path, "%s\\master.key", dir);
    n = read_file(path, file, sizeof file);
    snprintf(header, sizeof header, "%sdpapi-%s\n", key_magic, scope);
    snprintf(what, sizeof what, "master.key starts with \"%.*s\"", (int)strlen(header) - 1, header);
    check(n > 0 && strncmp(file, header, strlen(header)) == 0, what, SMTPB_OK);
    body = n > 0 ? file + strlen(header) : "";
    *blob_len = 4096;
    check(CryptStringToBinaryA(body, 0, CRYPT_STRING_BASE64, blob_out, blob_len, NULL, NULL) && *blob_len > 40 &&
              blob_out[0] == 1 && blob_out[1] == 0 && blob_out[2] == 0 && blob_out[3] == 0,
          "its second line is a base64 DPAPI blob (version 1)", SMTPB_OK);
    printf("  (blob of %lu bytes, made by %s)\n", (unsigned long)*blob_len,
           memcmp(blob_out + 4, windows_provider, 16) == 0 ? "Windows DPAPI"
           : memcmp(blob_out + 4, "Wine Crypt32 ok", 15) == 0 ? "Wine's DPAPI" : "an unknown DPAPI");
    in.cbData = *blob_len;
    in.pbData = blob_out;
    entropy.cbData = (DWORD)strlen("smtpbridge master.key");
    entropy.pbData = (BYTE *)"smtpbridge master.key";
    check(CryptUnprotectData(&in, NULL, &entropy, NULL, NULL, CRYPTPROTECT_UI_FORBIDDEN, &out) && out.cbData == 64,
          "CryptUnprotectData opens it to a 64-hex-digit key", SMTPB_OK);
    key_out[0] = '\0';
    if (out.pbData == NULL) return;
    memcpy(key_out, out.pbData, 64);
    key_out[64] = '\0';
    LocalFree(out.pbData);
    for (i = 0; i < 32; i++) sscanf(key_out + 2 * i, "%2hhx", &raw[i]);
    check(!contains(file, n, (const BYTE *)key_out, 64) && !contains(file, n, raw, 32),
          "the key is not in master.key (neither as hex nor as bytes)", SMTPB_OK);
}

/* The ACEs of path's DACL: 2, for this account and SYSTEM, and (folder)
 * protected from inheritance. Returns 1 when that holds. */
static int owner_only(const char *path) {
    wchar_t *wpath = wide(path);
    PACL dacl = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    ACL_SIZE_INFORMATION info;
    HANDLE token;
    BYTE user_buf[256], system_sid[SECURITY_MAX_SID_SIZE];
    DWORD len = sizeof user_buf, sid_len = sizeof system_sid, i;
    int user_seen = 0, system_seen = 0, others = 0;
    DWORD error = GetNamedSecurityInfoW(wpath, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL, &sd);
    free(wpath);
    if (error != ERROR_SUCCESS || dacl == NULL) {
        printf("  (GetNamedSecurityInfoW %s: error %lu)\n", path, (unsigned long)error);
        return 0;
    }
    OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token);
    GetTokenInformation(token, TokenUser, user_buf, len, &len);
    CloseHandle(token);
    CreateWellKnownSid(WinLocalSystemSid, NULL, system_sid, &sid_len);
    GetAclInformation(dacl, &info, sizeof info, AclSizeInformation);
    for (i = 0; i < info.AceCount; i++) {
        ACCESS_ALLOWED_ACE *ace = NULL;
        PSID sid;
        if (!GetAce(dacl, i, (void **)&ace)) continue;
        sid = (PSID)&ace->SidStart;
        if (ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE) others++;
        else if (EqualSid(sid, ((TOKEN_USER *)user_buf)->User.Sid)) user_seen++;
        else if (EqualSid(sid, system_sid)) system_seen++;
        else others++;
    }
    printf("  (%s: %lu ACEs: this account %d, SYSTEM %d, others %d)\n", path, (unsigned long)info.AceCount, user_seen,
           system_seen, others);
    LocalFree(sd);
    return info.AceCount == 2 && user_seen == 1 && system_seen == 1 && others == 0;
}

static int dacl_protected(const char *path) {
    wchar_t *wpath = wide(path);
    PACL dacl = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    SECURITY_DESCRIPTOR_CONTROL control = 0;
    DWORD revision = 0;
    DWORD error = GetNamedSecurityInfoW(wpath, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL, &sd);
    free(wpath);
    if (error != ERROR_SUCCESS) return -1;
    GetSecurityDescriptorControl(sd, &control, &revision);
    LocalFree(sd);
    return (control & SE_DACL_PROTECTED) != 0;
}

/* Whether this Windows keeps a DACL set with SetNamedSecurityInfoW: Wine
 * 10 accepts the call and keeps the permissions it derives from the Unix
 * mode, so there the ACL checks cannot be made. */
static int keeps_dacls(const char *dir) {
    char probe[1024];
    wchar_t *wprobe;
    PSECURITY_DESCRIPTOR sd = NULL;
    PACL dacl = NULL;
    BOOL present = FALSE, defaulted = FALSE;
    int kept;
    snprintf(probe, sizeof probe, "%s-acl-probe", dir);
    wprobe = wide(probe);
    CreateDirectoryW(wprobe, NULL);
    ConvertStringSecurityDescriptorToSecurityDescriptorW(L"D:P(A;OICI;FA;;;SY)", SDDL_REVISION_1, &sd, NULL);
    GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted);
    SetNamedSecurityInfoW(wprobe, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, NULL,
                          NULL, dacl, NULL);
    LocalFree(sd);
    kept = dacl_protected(probe) == 1;
    RemoveDirectoryW(wprobe);
    free(wprobe);
    return kept;
}

/* Opens dir with a NULL secret; returns the client or NULL (rc in *rc). */
static smtpb_client *open_null(const char *dir, smtpb_result *rc) {
    smtpb_client *c = NULL;
    *rc = smtpb_client_open(dir, NULL, SMTPB_OPEN_PAUSED, &c);
    return c;
}

static int credential_opens(smtpb_client *c, const char *user) {
    char *masked = NULL;
    smtpb_result rc = smtpb_credentials_masked(c, user, &masked);
    int ok = rc == SMTPB_OK && strstr(masked, "\"has_secret\":true") != NULL;
    if (!ok) printf("  (credentials_masked: %s %s)\n", smtpb_result_name(rc), masked ? masked : smtpb_last_error());
    smtpb_string_free(masked);
    return ok;
}

static int keyfile(const char *tag) {
    char name[128], *dir, path[1024], key[65], key2[65], file[8192], *b64;
    BYTE blob[4096];
    DWORD blob_len, b64_len = 0;
    smtpb_client *c;
    smtpb_result rc;
    wchar_t *wdir;
    long n;
    int acls;
    wchar_t user_name[256];
    DWORD user_len;
    static const char legacy_key[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    snprintf(name, sizeof name, "smtpbridge-key-%s", tag);
    dir = local_app_data(name);
    wdir = wide(dir);
    remove_tree(wdir);
    c = open_null(dir, &rc);
    check(c != NULL, "open a new data_dir under %LOCALAPPDATA% with a NULL secret", rc);
    if (c == NULL) return 1;
    rc = smtpb_credentials_set(c, "emp-1", "anna", "s3cret-dpapi");
    check(rc == SMTPB_OK, "store a credential", rc);
    smtpb_client_close(c);
    check_protected(dir, "user", key, blob, &blob_len);

    c = open_null(dir, &rc);
    check(c != NULL && credential_opens(c, "emp-1"), "a reopen unprotects the key and opens the credential", rc);
    if (c == NULL) return 1;
    acls = keeps_dacls(dir);
    if (acls) {
        snprintf(path, sizeof path, "%s\\master.key", dir);
        check(owner_only(path), "master.key has an owner-only ACL (this account and SYSTEM)", SMTPB_OK);
        snprintf(path, sizeof path, "%s\\credentials.json", dir);
        check(owner_only(path), "credentials.json has an owner-only ACL", SMTPB_OK);
        check(dacl_protected(dir) == 1 && owner_only(dir), "the data_dir's own DACL is owner-only, not inherited",
              SMTPB_OK);
    } else {
        printf("note: this Windows (Wine) does not keep a DACL set with SetNamedSecurityInfoW (it reports the"
               " Unix mode's): the owner-only ACL is not checked here\n");
    }

    rc = smtpb_config_set(c, "SMTPMasterKeyScope", "Machine");
    check(rc == SMTPB_OK, "set SMTPMasterKeyScope=Machine", rc);
    smtpb_client_close(c);
    c = open_null(dir, &rc);
    check(c != NULL && credential_opens(c, "emp-1"), "reopened: the credential still opens", rc);
    if (c != NULL) smtpb_client_close(c);
    check_protected(dir, "machine", key2, blob, &blob_len);
    check(strcmp(key, key2) == 0, "re-protected in machine scope, the key is the same", SMTPB_OK);
    if (memcmp(blob + 4, windows_provider, 16) == 0) {
        DWORD flags;
        memcpy(&flags, blob + 40, 4);
        check((flags & CRYPTPROTECT_LOCAL_MACHINE) != 0, "the blob's flags say CRYPTPROTECT_LOCAL_MACHINE", SMTPB_OK);
    } else {
        printf("note: this DPAPI (Wine's) writes no scope into its blob and ignores CRYPTPROTECT_LOCAL_MACHINE:"
               " machine scope is shown by the key file's header only\n");
    }

    /* A changed blob: one byte of the ciphertext near its end flipped. */
    snprintf(path, sizeof path, "%s\\master.key", dir);
    n = read_file(path, file, sizeof file);
    blob[blob_len - 30] ^= 0x55;
    CryptBinaryToStringA(blob, blob_len, CRYPT_STRING_BASE64 | CRYPT_STRING_NOCRLF, NULL, &b64_len);
    b64 = malloc(b64_len + 128);
    if (b64 == NULL) return 2;
    sprintf(b64, "%sdpapi-machine\n", key_magic);
    CryptBinaryToStringA(blob, blob_len, CRYPT_STRING_BASE64 | CRYPT_STRING_NOCRLF, b64 + strlen(b64), &b64_len);
    strcat(b64, "\n");
    write_file(path, b64, (DWORD)strlen(b64));
    c = open_null(dir, &rc);
    check(rc == SMTPB_ERR_CREDENTIALS && c == NULL && strstr(smtpb_last_error(), "master.key") != NULL &&
              strstr(smtpb_last_error(), "another Windows account or on another machine") != NULL,
          "a changed DPAPI blob is SMTPB_ERR_CREDENTIALS naming master.key and why", rc);
    printf("  (%s)\n", smtpb_last_error());
    if (c != NULL) smtpb_client_close(c);
    /* Another account: Wine's DPAPI keys blobs by the user name it reports. */
    write_file(path, file, (DWORD)n);
    user_len = GetEnvironmentVariableW(L"WINEUSERNAME", user_name, 256);
    SetEnvironmentVariableW(L"WINEUSERNAME", L"someone-else");
    c = open_null(dir, &rc);
    if (rc == SMTPB_ERR_CREDENTIALS) {
        check(strstr(smtpb_last_error(), "master.key") != NULL, "another account's key file is SMTPB_ERR_CREDENTIALS",
              rc);
    } else {
        printf("note: this DPAPI opened the key file for another user name (not shown here)\n");
    }
    if (c != NULL) smtpb_client_close(c);
    SetEnvironmentVariableW(L"WINEUSERNAME", user_len > 0 && user_len < 256 ? user_name : NULL);
    remove_tree(wdir);
    free(wdir);
    free(dir);
    free(b64);

    /* A 1.1 store: credentials sealed under the hex key, master.key raw. */
    snprintf(name, sizeof name, "smtpbridge-legacy-%s", tag);
    dir = local_app_data(name);
    wdir = wide(dir);
    remove_tree(wdir);
    rc = smtpb_client_open(dir, legacy_key, SMTPB_OPEN_PAUSED, &c);
    check(rc == SMTPB_OK, "make a store sealed under a known key (as 1.1 did with its raw key file)", rc);
    if (c == NULL) return 1;
    rc = smtpb_credentials_set(c, "emp-2", "bob", "s3cret-legacy");
    smtpb_client_close(c);
    snprintf(path, sizeof path, "%s\\master.key", dir);
    check(write_file(path, legacy_key, 64), "write its raw 1.1 master.key", SMTPB_OK);
    c = open_null(dir, &rc);
    check(c != NULL && credential_opens(c, "emp-2"), "open with a NULL secret: the raw key file works", rc);
    if (c != NULL) smtpb_client_close(c);
    check_protected(dir, "user", key, blob, &blob_len);
    check(strcmp(key, legacy_key) == 0, "migrated: the same key, now protected", SMTPB_OK);
    c = open_null(dir, &rc);
    check(c != NULL && credential_opens(c, "emp-2"), "reopened after the migration: the credential opens", rc);
    if (c != NULL) smtpb_client_close(c);
    remove_tree(wdir);
    free(wdir);
    free(dir);

    /* Outside the profile: the folder keeps the permissions it inherits. */
    snprintf(name, sizeof name, "C:\\smtpbridge-shared-%s", tag);
    wdir = wide(name);
    remove_tree(wdir);
    c = open_null(name, &rc);
    check(c != NULL, "open a data_dir outside the user's profile", rc);
    if (acls) {
        check(dacl_protected(name) == 0, "a data_dir outside the user's profile keeps its inherited DACL", SMTPB_OK);
    }
    if (c != NULL) smtpb_client_close(c);
    remove_tree(wdir);
    free(wdir);
    return failures != 0;
}

/* Two clients open one data_dir with SMTPB_OPEN_SHARED (shared LockFileEx);
 * within 5 s the outbox statistics of the second name this process as the
 * delivery lease's holder. */
static int test_shared(const char *base) {
    char dir[1024], pid[32], *stats = NULL;
    smtpb_client *one = NULL, *two = NULL;
    smtpb_result rc;
    int held = 0;
    snprintf(dir, sizeof dir, "%s-shared", base);
    snprintf(pid, sizeof pid, "\"pid\":%lu", (unsigned long)GetCurrentProcessId());
    rc = smtpb_client_open(dir, NULL, SMTPB_OPEN_SHARED, &one);
    check(rc == SMTPB_OK, "a shared open", rc);
    rc = smtpb_client_open(dir, NULL, SMTPB_OPEN_SHARED | SMTPB_OPEN_SUBMIT_ONLY, &two);
    check(rc == SMTPB_OK, "a second, submit-only shared open of the same data_dir", rc);
    for (int i = 0; i < 100 && !held && one != NULL && two != NULL; i++) {
        if (smtpb_outbox_stats(two, &stats) == SMTPB_OK) {
            held = strstr(stats, pid) != NULL;
            if (held) printf("  (%s)\n", strstr(stats, "\"delivery\""));
            smtpb_string_free(stats);
        }
        if (!held) Sleep(50);
    }
    smtpb_client_close(two);
    smtpb_client_close(one);
    return held ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (smtpb_abi_version() != SMTPB_ABI_VERSION) {
        printf("FAIL: the DLL has ABI version %u, this program needs %u\n", (unsigned)smtpb_abi_version(),
               (unsigned)SMTPB_ABI_VERSION);
        return 1;
    }
    if (strcmp(mode, "store") == 0 && argc == 4) return store(argv[2], argv[3]);
    if (strcmp(mode, "tls") == 0 && argc == 5) return tls(argv[2], argv[3], argv[4], 1);
    if (strcmp(mode, "tls-root") == 0 && argc == 4) return tls(argv[2], argv[3], NULL, 0);
    if (strcmp(mode, "root-add") == 0 && argc == 3) return root_store(argv[2], 1);
    if (strcmp(mode, "root-remove") == 0 && argc == 3) return root_store(argv[2], 0);
    if (strcmp(mode, "graph") == 0 && argc == 6) return graph(argv[2], argv[3], argv[4], argv[5]);
    if (strcmp(mode, "version") == 0 && argc == 4) return version(argv[2], argv[3]);
    if (strcmp(mode, "keyfile") == 0 && argc == 3) return keyfile(argv[2]);
    fprintf(stderr,
            "usage: wintest store TAG PORT | tls TAG PORT CA_PEM | tls-root TAG PORT |"
            " root-add CA_PEM | root-remove CA_PEM | graph TAG URL TOKEN CA_PEM | version FILE VERSION |"
            " keyfile TAG\n");
    return 2;
}
