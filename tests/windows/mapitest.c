/* The Simple MAPI provider (smtpbridge_mapi.dll) under Wine, called as
 * programs call it: LoadLibrary("mapi32.dll") + GetProcAddress, so the
 * system's MAPI stub finds the default mail client in the registry
 * (smtpbridge register-mapi --default) and hands the calls on.
 *
 *   mapitest.exe mapi ARCH FILE1 FILE2 FILE2_NAME
 *       MAPIResolveName + MAPIFreeBuffer; MAPILogon, MAPISendMail (ANSI,
 *       To/CC/BCC, text, FILE1 and FILE2), MAPILogoff; MAPISendMailW without
 *       a session (display name with a comma, HTML, FILE1 and FILE2 named
 *       FILE2_NAME); a missing file -> MAPI_E_ATTACHMENT_NOT_FOUND;
 *       a bad class -> MAPI_E_BAD_RECIPTYPE; a name without address ->
 *       MAPI_E_UNKNOWN_RECIPIENT; MAPI_DIALOG -> SUCCESS_SUCCESS (an .eml
 *       written and opened, nothing sent).
 *   mapitest.exe series DLL SUBJECT COUNT TO
 *       COUNT mails "SUBJECT 1" ... "SUBJECT COUNT" to TO, each by its own
 *       MAPISendMail without MAPILogon, through DLL (mapi32.dll, or the
 *       provider's path to call it directly).
 *   mapitest.exe render DATA_DIR MESSAGE_JSON_FILE OUT_EML
 *       the same mail's MIME through the C ABI (smtpb_render).
 * Exits 0 when every check passed, 1 naming the first that did not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <shellapi.h>

#include "smtpbridge.h"

/* mapi.h's Simple MAPI declarations (MinGW ships mapi.h, but these few
 * lines keep the test independent of its version). */
typedef ULONG_PTR LHANDLE;
typedef struct {
    ULONG ulReserved, ulRecipClass;
    LPSTR lpszName, lpszAddress;
    ULONG ulEIDSize;
    LPVOID lpEntryID;
} RecipA;
typedef struct {
    ULONG ulReserved, ulRecipClass;
    PWSTR lpszName, lpszAddress;
    ULONG ulEIDSize;
    LPVOID lpEntryID;
} RecipW;
typedef struct {
    ULONG ulReserved, flFlags, nPosition;
    LPSTR lpszPathName, lpszFileName;
    LPVOID lpFileType;
} FileA;
typedef struct {
    ULONG ulReserved, flFlags, nPosition;
    PWSTR lpszPathName, lpszFileName;
    LPVOID lpFileType;
} FileW;
typedef struct {
    ULONG ulReserved;
    LPSTR lpszSubject, lpszNoteText, lpszMessageType, lpszDateReceived, lpszConversationID;
    ULONG flFlags;
    RecipA *lpOriginator;
    ULONG nRecipCount;
    RecipA *lpRecips;
    ULONG nFileCount;
    FileA *lpFiles;
} MessageA;
typedef struct {
    ULONG ulReserved;
    PWSTR lpszSubject, lpszNoteText, lpszMessageType, lpszDateReceived, lpszConversationID;
    ULONG flFlags;
    RecipW *lpOriginator;
    ULONG nRecipCount;
    RecipW *lpRecips;
    ULONG nFileCount;
    FileW *lpFiles;
} MessageW;
typedef ULONG(WINAPI *SendMailA)(LHANDLE, ULONG_PTR, MessageA *, ULONG, ULONG);
typedef ULONG(WINAPI *SendMailW)(LHANDLE, ULONG_PTR, MessageW *, ULONG, ULONG);
typedef ULONG(WINAPI *Logon)(ULONG_PTR, LPSTR, LPSTR, ULONG, ULONG, LHANDLE *);
typedef ULONG(WINAPI *Logoff)(LHANDLE, ULONG_PTR, ULONG, ULONG);
typedef ULONG(WINAPI *ResolveName)(LHANDLE, ULONG_PTR, LPSTR, ULONG, ULONG, RecipA **);
typedef ULONG(WINAPI *FreeBuffer)(LPVOID);

#define MAPI_TO 1
#define MAPI_CC 2
#define MAPI_BCC 3
#define MAPI_DIALOG 0x8
#define MAPI_E_ATTACHMENT_NOT_FOUND 11
#define MAPI_E_UNKNOWN_RECIPIENT 14
#define MAPI_E_BAD_RECIPTYPE 15

static int failures = 0;

static void expect(const char *what, ULONG got, ULONG want) {
    if (got == want) {
        printf("ok: %s -> %lu\n", what, (unsigned long)got);
    } else {
        printf("FAIL: %s -> %lu, expected %lu\n", what, (unsigned long)got, (unsigned long)want);
        failures++;
    }
}

static FARPROC need(HMODULE module, const char *name) {
    FARPROC proc = GetProcAddress(module, name);
    if (!proc) {
        printf("FAIL: mapi32.dll has no %s\n", name);
        exit(1);
    }
    return proc;
}

/* UTF-8 -> a new UTF-16 string (never freed: the process is short). */
static PWSTR wide(const char *utf8) {
    int n = MultiByteToWideChar(CP_UTF8, 0, utf8, -1, NULL, 0);
    PWSTR out = calloc((size_t)n, sizeof(WCHAR));
    MultiByteToWideChar(CP_UTF8, 0, utf8, -1, out, n);
    return out;
}

static int run_mapi(const char *arch, const char *file1, const char *file2) {
    /* The arguments as UTF-16 (argv is in the ANSI code page). */
    int wargc = 0;
    PWSTR *wargv = CommandLineToArgvW(GetCommandLineW(), &wargc);
    if (!wargv || wargc != 6) {
        printf("FAIL: CommandLineToArgvW\n");
        return 1;
    }
    HMODULE mapi = LoadLibraryA("mapi32.dll");
    if (!mapi) {
        printf("FAIL: LoadLibrary(mapi32.dll): %lu\n", GetLastError());
        return 1;
    }
    SendMailA send_a = (SendMailA)(void (*)(void))need(mapi, "MAPISendMail");
    SendMailW send_w = (SendMailW)(void (*)(void))need(mapi, "MAPISendMailW");
    Logon logon = (Logon)(void (*)(void))need(mapi, "MAPILogon");
    Logoff logoff = (Logoff)(void (*)(void))need(mapi, "MAPILogoff");
    ResolveName resolve = (ResolveName)(void (*)(void))need(mapi, "MAPIResolveName");
    FreeBuffer free_buffer = (FreeBuffer)(void (*)(void))need(mapi, "MAPIFreeBuffer");
    char subject[200];

    RecipA *resolved = NULL;
    expect("MAPIResolveName", resolve(0, 0, "Anna Schmidt <anna@example.com>", 0, 0, &resolved), 0);
    if (resolved && (strcmp(resolved->lpszAddress, "SMTP:anna@example.com") != 0 ||
                     strcmp(resolved->lpszName, "Anna Schmidt") != 0 || resolved->ulRecipClass != MAPI_TO)) {
        printf("FAIL: MAPIResolveName gave %s / %s\n", resolved->lpszName, resolved->lpszAddress);
        failures++;
    }
    expect("MAPIFreeBuffer", free_buffer(resolved), 0);
    expect("MAPIResolveName of a name alone", resolve(0, 0, "Anna", 0, 0, &resolved), MAPI_E_UNKNOWN_RECIPIENT);

    /* ANSI, in a session: To by address with a name, CC by name alone, BCC
     * with an SMTP: address; a text note; two files, the second named. */
    LHANDLE session = 0;
    expect("MAPILogon", logon(0, NULL, NULL, 0, 0, &session), 0);
    RecipA recips_a[3] = {
        {0, MAPI_TO, "Hans Mueller", "SMTP:hans@example.com", 0, NULL},
        {0, MAPI_CC, "cc@example.com", NULL, 0, NULL},
        {0, MAPI_BCC, "", "bcc@example.com", 0, NULL},
    };
    FileA files_a[2] = {{0, 0, (ULONG)-1, (LPSTR)file1, NULL, NULL}, {0, 0, (ULONG)-1, (LPSTR)file2, "Overview.txt", NULL}};
    snprintf(subject, sizeof subject, "MAPI ANSI (%s)", arch);
    MessageA message_a = {0, subject, "Dear client,\r\nyour invoice is attached.\r\n", NULL, NULL, NULL, 0, NULL, 3,
                          recips_a, 2, files_a};
    expect("MAPISendMail (ANSI, session)", send_a(session, 0, &message_a, 0, 0), 0);
    expect("MAPILogoff", logoff(session, 0, 0, 0), 0);

    /* Wide, no session: a display name with a comma and umlaut, HTML, the
     * second file with a non-ASCII name. */
    RecipW recips_w[3] = {
        {0, MAPI_TO, wide("Müller, Hans"), wide("SMTP:hans@example.com"), 0, NULL},
        {0, MAPI_CC, wide("cc@example.com"), NULL, 0, NULL},
        {0, MAPI_BCC, NULL, wide("bcc@example.com"), 0, NULL},
    };
    FileW files_w[2] = {{0, 0, (ULONG)-1, wargv[3], NULL, NULL}, {0, 0, (ULONG)-1, wargv[4], wargv[5], NULL}};
    snprintf(subject, sizeof subject, "MAPI wide (%s) Ä", arch);
    MessageW message_w = {0, wide(subject), wide("<p>Dear client,<br>your invoice is attached.</p>"), NULL, NULL, NULL, 0,
                          NULL, 3, recips_w, 2, files_w};
    expect("MAPISendMailW (no session)", send_w(0, 0, &message_w, 0, 0), 0);

    /* MAPI_DIALOG: the same mail written as an .eml and opened; nothing sent. */
    snprintf(subject, sizeof subject, "MAPI dialog (%s) Ä", arch);
    message_w.lpszSubject = wide(subject);
    expect("MAPISendMailW with MAPI_DIALOG", send_w(0, 0, &message_w, MAPI_DIALOG, 0), 0);

    /* Refused before anything is queued. */
    snprintf(subject, sizeof subject, "MAPI refused (%s)", arch);
    message_w.lpszSubject = wide(subject);
    FileW missing[1] = {{0, 0, (ULONG)-1, wide("C:\\users\\root\\Documents\\no such file.pdf"), NULL, NULL}};
    message_w.lpFiles = missing;
    message_w.nFileCount = 1;
    expect("MAPISendMailW with a missing file", send_w(0, 0, &message_w, 0, 0), MAPI_E_ATTACHMENT_NOT_FOUND);
    message_w.nFileCount = 0;
    recips_w[2].ulRecipClass = 9;
    expect("MAPISendMailW with recipient class 9", send_w(0, 0, &message_w, 0, 0), MAPI_E_BAD_RECIPTYPE);
    recips_w[2].ulRecipClass = MAPI_BCC;
    recips_w[0].lpszAddress = NULL;
    expect("MAPISendMailW with a name and no address", send_w(0, 0, &message_w, 0, 0), MAPI_E_UNKNOWN_RECIPIENT);
    return failures ? 1 : 0;
}

static int run_series(const char *dll, const char *subject, int count, const char *to) {
    HMODULE mapi = LoadLibraryA(dll);
    if (!mapi) {
        printf("FAIL: LoadLibrary(%s): %lu\n", dll, GetLastError());
        return 1;
    }
    SendMailA send_a = (SendMailA)(void (*)(void))need(mapi, "MAPISendMail");
    RecipA recip = {0, MAPI_TO, "", (LPSTR)to, 0, NULL};
    char text[200], what[300];
    for (int k = 1; k <= count; k++) {
        snprintf(text, sizeof text, "%s %d", subject, k);
        MessageA message = {0, text, "One of a series.\r\n", NULL, NULL, NULL, 0, NULL, 1, &recip, 0, NULL};
        snprintf(what, sizeof what, "MAPISendMail (no session) \"%s\"", text);
        expect(what, send_a(0, 0, &message, 0, 0), 0);
    }
    return failures ? 1 : 0;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc((size_t)size + 1, 1);
    if (fread(text, 1, (size_t)size, f) != (size_t)size) size = 0;
    fclose(f);
    return text;
}

static int run_render(const char *data_dir, const char *json_file, const char *out) {
    smtpb_client *client = NULL;
    char *message = read_file(json_file);
    if (!message || smtpb_client_open(data_dir, NULL, 0, &client) != SMTPB_OK) {
        printf("FAIL: open %s / read %s: %s\n", data_dir, json_file, smtpb_last_error());
        return 1;
    }
    char *eml = NULL;
    if (smtpb_render(client, message, &eml) != SMTPB_OK) {
        printf("FAIL: smtpb_render: %s\n", smtpb_last_error());
        return 1;
    }
    FILE *f = fopen(out, "wb");
    fwrite(eml, 1, strlen(eml), f);
    fclose(f);
    smtpb_string_free(eml);
    smtpb_client_close(client);
    printf("ok: smtpb_render wrote %s\n", out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "mapi") == 0) return run_mapi(argv[2], argv[3], argv[4]);
    if (argc == 6 && strcmp(argv[1], "series") == 0) return run_series(argv[2], argv[3], atoi(argv[4]), argv[5]);
    if (argc == 5 && strcmp(argv[1], "render") == 0) return run_render(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: mapitest mapi ARCH FILE1 FILE2 FILE2_NAME | series DLL SUBJECT COUNT TO |"
                    " render DATA_DIR JSON OUT\n");
    return 2;
}
