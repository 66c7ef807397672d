/*
 * Throughput and memory of libsmtpbridge through its C ABI, against a
 * loopback SMTP sink. bench/run.sh starts Postfix's smtp-sink (and stunnel
 * in front of it for TLS), runs the reference clients against the same
 * sink, and runs this program once per measurement:
 *
 *   bench send      PORT N            smtpb_send of a 10 KB message, N times, one pooled connection
 *   bench send4     PORT N            the same from 4 threads on one client (4 pooled connections)
 *   bench send-off  PORT N            bench send with SMTPTranscript=Off (no recording at all)
 *   bench send-lines PORT N           bench send of a 10 KB body of 72-character lines (7bit) instead of
 *                                     one long line (quoted-printable)
 *   bench tls       PORT N CA         the same over implicit TLS, one pooled connection
 *   bench big       PORT N FILE       a message with FILE attached, N times (prints peak memory)
 *   bench durable   PORT N DIR        smtpb_send on a client with a data_dir
 *   bench outbox    PORT N DIR        durable enqueue with the outbox paused, then the drain
 *   bench enqueue   PORT N DIR T      durable enqueue from T threads on one client, the outbox paused
 *   bench profiles  PORT N K          smtpb_send with K profiles configured (K-1 filters that do not match)
 *   bench uptime    PORT N [All]      smtpb_send N times on one in-memory client, RSS at 20k, 200k, 1M
 *   bench open      PORT N DIR        smtpb_client_open with N messages queued
 *   bench merge     PORT N DIR        smtpb_merge of N recipients into the durable outbox
 *   bench dkim      PORT N KEY        smtpb_send signed with an RSA key
 *
 * Prints one line: name, count, seconds, rate, notes.
 */
#define _POSIX_C_SOURCE 200809L
#include <smtpbridge.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifndef _WIN32
#include <sys/resource.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(smtpb_result rc, const char *what) {
    if (rc != SMTPB_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, smtpb_result_name(rc), smtpb_last_error());
        exit(1);
    }
}

static const char *port;

static smtpb_client *open_client(const char *dir, uint32_t flags) {
    smtpb_client *c = NULL;
    check(smtpb_client_open(dir, "bench-secret", flags, &c), "smtpb_client_open");
    check(smtpb_config_set(c, "SMTPServer", "127.0.0.1"), "SMTPServer");
    check(smtpb_config_set(c, "SMTPServerPort", port), "SMTPServerPort");
    check(smtpb_config_set(c, "SMTPAuthentication", "None"), "SMTPAuthentication");
    check(smtpb_config_set(c, "SMTPSenderEmail", "bench@firm.example"), "SMTPSenderEmail");
    check(smtpb_config_set(c, "SMTPDeliveryThreads", "1"), "SMTPDeliveryThreads");
    return c;
}

/* A 10 KB text message, as in the research baseline: one long line (sent
 * quoted-printable); and 10 KB in lines of 72 characters (sent 7bit), as
 * bench/messages.py writes them for the reference clients. */
static char message[16384], message_lines[16384];

static void make_message(void) {
    char body[10241], lines[12000];
    size_t l = 0;
    for (int i = 0; i < 10240; i++) {
        body[i] = (i % 80 == 79) ? ' ' : (char)('a' + i % 26);
        if (i % 73 == 72) {
            lines[l++] = '\\';
            lines[l++] = 'n';
        } else {
            lines[l++] = (char)('a' + i % 26);
        }
    }
    body[10240] = 0;
    lines[l] = 0;
    snprintf(message, sizeof message, "{\"to\":[\"sink@example.com\"],\"subject\":\"benchmark\",\"text\":\"%s\"}", body);
    snprintf(message_lines, sizeof message_lines,
             "{\"to\":[\"sink@example.com\"],\"subject\":\"benchmark\",\"text\":\"%s\"}", lines);
}

static void report(const char *name, int count, double seconds, const char *notes) {
    printf("%-44s %6d %8.3f %9.0f/s  %s\n", name, count, seconds, count / seconds, notes ? notes : "");
}

static long rss_kb(void) { /* resident set size now, from /proc */
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * 4;
}

/* The process's peak RSS, and how far above `before` (KiB) it went. */
static void peak_notes(char *notes, size_t size, long before) {
#ifdef _WIN32 /* bench/windows.sh measures rates only */
    (void)before;
    snprintf(notes, size, "peak RSS not measured on Windows");
#else
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    snprintf(notes, size, "peak RSS %.1f MiB, %.1f MiB above the idle client", usage.ru_maxrss / 1024.0,
             (usage.ru_maxrss - before) / 1024.0);
#endif
}

static void send_loop(smtpb_client *c, const char *json, int n) {
    for (int i = 0; i < n; i++) check(smtpb_send(c, json, NULL), "smtpb_send");
}

struct worker { smtpb_client *c; int n; int enqueue; };

static const char *send_json = message;

static void *worker_main(void *arg) {
    struct worker *w = arg;
    if (w->enqueue)
        for (int i = 0; i < w->n; i++) check(smtpb_enqueue(w->c, message, NULL), "smtpb_enqueue");
    else
        send_loop(w->c, send_json, w->n);
    return NULL;
}

/* Runs `threads` workers (at most 8), n messages in all. */
static void run_workers(smtpb_client *c, int threads, int n, int enqueue) {
    pthread_t ids[8];
    struct worker w[8];
    for (int i = 0; i < threads; i++) {
        w[i].c = c;
        w[i].n = n / threads;
        w[i].enqueue = enqueue;
        pthread_create(&ids[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench MODE PORT N [ARG]\n");
        return 2;
    }
    if (smtpb_abi_version() != SMTPB_ABI_VERSION) return 2;
    const char *mode = argv[1], *arg = argc > 4 ? argv[4] : NULL;
    port = argv[2];
    int n = atoi(argv[3]);
    make_message();
    char notes[128] = "";

    if (!strcmp(mode, "send") || !strcmp(mode, "send4") || !strcmp(mode, "tls") || !strcmp(mode, "dkim") ||
        !strcmp(mode, "send-off") || !strcmp(mode, "send-lines")) {
        smtpb_client *c = open_client(NULL, SMTPB_OPEN_DEFAULT);
        if (!strcmp(mode, "send-off")) check(smtpb_config_set(c, "SMTPTranscript", "Off"), "SMTPTranscript");
        if (!strcmp(mode, "tls")) {
            check(smtpb_config_set(c, "SMTPServerEncryption", "SSL"), "SMTPServerEncryption");
            check(smtpb_config_set(c, "SMTPServerPort", port), "SMTPServerPort");
            check(smtpb_config_set(c, "SMTPCaFile", arg), "SMTPCaFile");
            check(smtpb_config_set(c, "SMTPTlsServerName", "localhost"), "SMTPTlsServerName");
        }
        if (!strcmp(mode, "dkim")) {
            check(smtpb_config_set(c, "SMTPDkimDomain", "firm.example"), "SMTPDkimDomain");
            check(smtpb_config_set(c, "SMTPDkimSelector", "bench"), "SMTPDkimSelector");
            check(smtpb_config_set(c, "SMTPDkimKeyFile", arg), "SMTPDkimKeyFile");
        }
        if (!strcmp(mode, "send-lines")) send_json = message_lines;
        int threads = !strcmp(mode, "send4") ? 4 : 1;
        send_loop(c, send_json, threads); /* warm-up: one pooled connection per thread */
        double t = now();
        if (threads == 1) {
            send_loop(c, send_json, n);
        } else {
            run_workers(c, 4, n, 0);
        }
        double took = now() - t;
        const char *name = threads == 4 ? "smtpbridge: smtpb_send, 4 threads, 4 connections"
                         : !strcmp(mode, "tls") ? "smtpbridge: smtpb_send, implicit TLS, 1 connection"
                         : !strcmp(mode, "dkim") ? "smtpbridge: smtpb_send, DKIM rsa-sha256"
                         : !strcmp(mode, "send-off") ? "smtpbridge: smtpb_send, 1 connection, transcripts off"
                         : !strcmp(mode, "send-lines") ? "smtpbridge: smtpb_send, 1 connection, 72-char lines"
                                                 : "smtpbridge: smtpb_send, 1 connection";
        report(name, n, took, NULL);
        smtpb_client_close(c);
    } else if (!strcmp(mode, "big")) {
        char json[4096];
        snprintf(json, sizeof json,
                 "{\"to\":[\"sink@example.com\"],\"subject\":\"benchmark\",\"text\":\"see attached\","
                 "\"attachments\":[{\"path\":\"%s\",\"name\":\"big.bin\"}]}", arg);
        smtpb_client *c = open_client(NULL, SMTPB_OPEN_DEFAULT);
        send_loop(c, message, 1);
        long before = rss_kb();
        double t = now();
        send_loop(c, json, n);
        double took = now() - t;
        peak_notes(notes, sizeof notes, before);
        report("smtpbridge: smtpb_send, 5 MiB attachment", n, took, notes);
        smtpb_client_close(c);
    } else if (!strcmp(mode, "durable")) {
        smtpb_client *c = open_client(arg, SMTPB_OPEN_DEFAULT);
        send_loop(c, message, 1);
        double t = now();
        send_loop(c, message, n);
        report("smtpbridge: smtpb_send, durable (data_dir)", n, now() - t, NULL);
        smtpb_client_close(c);
    } else if (!strcmp(mode, "outbox")) {
        smtpb_client *c = open_client(arg, SMTPB_OPEN_PAUSED);
        double t = now();
        for (int i = 0; i < n; i++) check(smtpb_enqueue(c, message, NULL), "smtpb_enqueue");
        report("smtpbridge: smtpb_enqueue, durable", n, now() - t, "outbox paused");
        t = now();
        check(smtpb_outbox_resume(c, NULL), "smtpb_outbox_resume");
        check(smtpb_flush(c, UINT32_MAX), "smtpb_flush");
        report("smtpbridge: drain of the queue (1 thread)", n, now() - t, NULL);
        smtpb_client_close(c);
    } else if (!strcmp(mode, "enqueue")) {
        int threads = arg && argc > 5 ? atoi(argv[5]) : 1;
        if (threads < 1 || threads > 8) threads = 1;
        smtpb_client *c = open_client(arg, SMTPB_OPEN_PAUSED);
        check(smtpb_enqueue(c, message, NULL), "smtpb_enqueue"); /* warm-up */
        double t = now();
        run_workers(c, threads, n, 1);
        snprintf(notes, sizeof notes, "%d thread(s), outbox paused", threads);
        report("smtpbridge: smtpb_enqueue, durable", n / threads * threads, now() - t, notes);
        smtpb_client_close(c);
    } else if (!strcmp(mode, "profiles")) {
        int k = arg ? atoi(arg) : 1;
        smtpb_client *c = open_client(NULL, SMTPB_OPEN_DEFAULT);
        check(smtpb_config_set(c, "SMTPTranscript", "Off"), "SMTPTranscript");
        for (int i = 1; i < k; i++) {
            char key[64], value[64];
            snprintf(key, sizeof key, "P%d.SMTPServer", i);
            check(smtpb_config_set(c, key, "127.0.0.1"), key);
            snprintf(key, sizeof key, "P%d.SMTPFilter", i);
            snprintf(value, sizeof value, "@p%d.example", i);
            check(smtpb_config_set(c, key, value), key);
        }
        send_loop(c, message, 1);
        double t = now();
        send_loop(c, message, n);
        snprintf(notes, sizeof notes, "%d profile(s)", k);
        report("smtpbridge: smtpb_send, profiles configured", n, now() - t, notes);
        smtpb_client_close(c);
    } else if (!strcmp(mode, "uptime")) {
        smtpb_client *c = open_client(NULL, SMTPB_OPEN_DEFAULT);
        if (arg) check(smtpb_config_set(c, "SMTPTranscript", arg), "SMTPTranscript");
        send_loop(c, message, 1);
        printf("idle RSS %.1f MiB (SMTPTranscript=%s)\n", rss_kb() / 1024.0, arg ? arg : "Failures");
        double t = now();
        int done = 0;
        const int marks[] = {20000, 200000, 1000000};
        for (int m = 0; m < 3 && marks[m] <= n; m++) {
            send_loop(c, message, marks[m] - done);
            done = marks[m];
            snprintf(notes, sizeof notes, "RSS %.1f MiB", rss_kb() / 1024.0);
            report("smtpbridge: smtpb_send, one in-memory client", done, now() - t, notes);
            fflush(stdout);
        }
        smtpb_client_close(c);
    } else if (!strcmp(mode, "open")) {
        smtpb_client *c = open_client(arg, SMTPB_OPEN_PAUSED);
        for (int i = 0; i < n; i++) check(smtpb_enqueue(c, message, NULL), "smtpb_enqueue");
        smtpb_client_close(c);
        double t = now();
        check(smtpb_client_open(arg, "bench-secret", SMTPB_OPEN_PAUSED, &c), "smtpb_client_open");
        double took = now() - t;
        snprintf(notes, sizeof notes, "open took %.1f ms", took * 1000);
        report("smtpbridge: smtpb_client_open, N queued", n, took, notes);
        smtpb_client_close(c);
    } else if (!strcmp(mode, "merge")) {
        size_t cap = (size_t)n * 96 + 16, len = 0;
        char *recipients = malloc(cap);
        len += (size_t)snprintf(recipients + len, cap - len, "[");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(recipients + len, cap - len,
                                    "%s{\"email\":\"client%d@example.com\",\"fields\":{\"Name\":\"Client %d\"}}",
                                    i ? "," : "", i, i);
        snprintf(recipients + len, cap - len, "]");
        const char *template_json =
            "{\"subject\":\"Your statement, {{Name}}\",\"html\":\"<p>Dear {{Name}},</p><p>please find your "
            "statement of account for November.</p>\"}";
        smtpb_client *c = open_client(arg, SMTPB_OPEN_PAUSED);
        long before = rss_kb();
        double t = now();
        char *batch = NULL;
        check(smtpb_merge(c, template_json, recipients, &batch), "smtpb_merge");
        double took = now() - t;
        peak_notes(notes, sizeof notes, before);
        report("smtpbridge: smtpb_merge into the durable outbox", n, took, notes);
        smtpb_string_free(batch);
        smtpb_client_close(c);
        free(recipients);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
