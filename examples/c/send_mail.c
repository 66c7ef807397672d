/*
 * send_mail: send one HTML mail with an attachment through libsmtpbridge.
 *
 *   send_mail PORT ATTACHMENT [TO]
 *
 * Sends to the SMTP server on 127.0.0.1:PORT without TLS or AUTH (a
 * loopback test server such as examples/smtp_server.py). ATTACHMENT is an
 * absolute path. Prints the status JSON of the send, then reads it back
 * with smtpb_status. Exit code 0 on success.
 *
 * Build: gcc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude \
 *        examples/c/send_mail.c -Ltarget/release -lsmtpbridge \
 *        -Wl,-rpath,$PWD/target/release
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpbridge.h"

/* Not (yet) emitted by the generated header; these are the header's values. */
#ifndef SMTPB_ABI_VERSION
#define SMTPB_ABI_VERSION 1u
#endif
#ifndef SMTPB_OPEN_DEFAULT
#define SMTPB_OPEN_DEFAULT 0u
#endif

/* Prints a failed call's code name and the library's message. Call it
 * right after the failure: the next smtpb_ call may replace the message. */
static int report(const char *what, smtpb_result rc) {
    fprintf(stderr, "%s: %s: %s\n", what, smtpb_result_name(rc), smtpb_last_error());
    return 1;
}

/* `text` as a JSON string literal (quotes included), in a buffer the
 * caller frees; NULL if out of memory. */
static char *json_string(const char *text) {
    char *out = malloc(strlen(text) * 6 + 3), *o = out;
    const unsigned char *t;
    if (out == NULL) return NULL;
    *o++ = '"';
    for (t = (const unsigned char *)text; *t != '\0'; t++) {
        if (*t == '"' || *t == '\\') {
            *o++ = '\\';
            *o++ = (char)*t;
        } else if (*t < 0x20) {
            o += sprintf(o, "\\u%04x", *t);
        } else {
            *o++ = (char)*t; /* UTF-8 bytes pass through */
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* Copies the value of the top-level "id" of a status JSON into id[27]. */
static int status_id(const char *status, char id[27]) {
    const char *p = strstr(status, "\"id\"");
    size_t n;
    if (p == NULL) return 0;
    p += 4;
    p += strspn(p, " \t\r\n:");
    if (*p++ != '"') return 0;
    n = strcspn(p, "\"");
    if (n != 26) return 0;
    memcpy(id, p, n);
    id[n] = '\0';
    return 1;
}

int main(int argc, char **argv) {
    static const char message_format[] =
        "{\"from\": {\"email\": \"anna@firm.example\", \"name\": \"Anna Smith\"},"
        " \"to\": [%s],"
        " \"subject\": \"Your invoice - C example\","
        " \"html\": \"<p>Dear client,</p><p>your invoice is attached.</p>\","
        " \"attachments\": [{\"path\": %s}],"
        " \"reference\": \"examples/c\"}";
    smtpb_client *client = NULL;
    char *to = NULL, *path = NULL, *message = NULL, *status = NULL, *again = NULL;
    char id[27];
    smtpb_result rc;
    int failed = 1;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s PORT ATTACHMENT [TO]\n", argv[0]);
        return 2;
    }
    if (smtpb_abi_version() != SMTPB_ABI_VERSION) {
        fprintf(stderr, "libsmtpbridge has ABI version %u; this program needs %u\n",
                (unsigned)smtpb_abi_version(), (unsigned)SMTPB_ABI_VERSION);
        return 1;
    }
    printf("libsmtpbridge %s (header %s)\n", smtpb_version(), SMTPB_VERSION);

    rc = smtpb_client_open(NULL, NULL, SMTPB_OPEN_DEFAULT, &client); /* in memory */
    if (rc != SMTPB_OK) return report("smtpb_client_open", rc);

    if ((rc = smtpb_config_set(client, "SMTPServer", "127.0.0.1")) != SMTPB_OK ||
        (rc = smtpb_config_set(client, "SMTPServerPort", argv[1])) != SMTPB_OK ||
        (rc = smtpb_config_set(client, "SMTPAuthentication", "None")) != SMTPB_OK) {
        report("smtpb_config_set", rc);
        goto done;
    }

    to = json_string(argc == 4 ? argv[3] : "client@example.com");
    path = json_string(argv[2]);
    message = (to && path) ? malloc(sizeof message_format + strlen(to) + strlen(path)) : NULL;
    if (message == NULL) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    sprintf(message, message_format, to, path);

    /* The status is written whatever the result once the message is
     * recorded, so it is printed (and freed) on failure too. */
    rc = smtpb_send(client, message, &status);
    if (rc != SMTPB_OK) {
        report("smtpb_send", rc);
        if (status != NULL) fprintf(stderr, "status: %s\n", status);
        goto done;
    }
    printf("sent: %s\n", status);

    if (!status_id(status, id)) {
        fprintf(stderr, "no message id in the status\n");
        goto done;
    }
    rc = smtpb_status(client, id, &again);
    if (rc != SMTPB_OK) {
        report("smtpb_status", rc);
        goto done;
    }
    printf("status of %s: %s\n", id, again);
    failed = 0;

done:
    smtpb_string_free(again);
    smtpb_string_free(status);
    free(message);
    free(path);
    free(to);
    smtpb_client_close(client);
    return failed;
}
