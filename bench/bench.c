/*
 * Throughput and latency of libsmtpbridge through its C ABI, against a
 * loopback SMTP sink (bench/run.sh starts Postfix's smtp-sink and runs the
 * reference client smtp-source against the same sink in the same run).
 *
 *   bench PORT WORKDIR [DKIM_KEY_PEM]
 *
 * Prints one line per measurement: name, count, seconds, rate, extra.
 */
#define _POSIX_C_SOURCE 200809L
#include <smtpbridge.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

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

static void configure(smtpb_client *c, const char *port) {
    check(smtpb_config_set(c, "SMTPServer", "127.0.0.1"), "SMTPServer");
    check(smtpb_config_set(c, "SMTPServerPort", port), "SMTPServerPort");
    check(smtpb_config_set(c, "SMTPAuthentication", "None"), "SMTPAuthentication");
    check(smtpb_config_set(c, "SMTPSenderEmail", "bench@firm.example"), "SMTPSenderEmail");
    check(smtpb_config_set(c, "SMTPDeliveryThreads", "1"), "SMTPDeliveryThreads");
}

/* A 10 KB text message, as in the research baseline. */
static char message[16384];

static void make_message(void) {
    char body[10241];
    for (int i = 0; i < 10240; i++) body[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
    body[10240] = 0;
    snprintf(message, sizeof message,
             "{\"to\":[\"sink@example.com\"],\"subject\":\"benchmark\",\"text\":\"%s\"}", body);
    for (char *p = message; *p; p++) /* JSON-escape the newlines */
        if (*p == '\n') *p = ' ';
}

static void report(const char *name, int count, double seconds, const char *extra) {
    printf("%-34s %7d %9.3f %10.0f/s %s\n", name, count, seconds, count / seconds, extra ? extra : "");
    fflush(stdout);
}

static smtpb_client *open_client(const char *dir, uint32_t flags) {
    smtpb_client *c = NULL;
    check(smtpb_client_open(dir, "bench-secret", flags, &c), "smtpb_client_open");
    return c;
}

static void sync_sends(const char *port, int n, const char *name, const char *dkim_key) {
    smtpb_client *c = open_client(NULL, SMTPB_OPEN_DEFAULT);
    configure(c, port);
    if (dkim_key) {
        check(smtpb_config_set(c, "SMTPDkimDomain", "firm.example"), "SMTPDkimDomain");
        check(smtpb_config_set(c, "SMTPDkimSelector", "bench"), "SMTPDkimSelector");
        check(smtpb_config_set(c, "SMTPDkimKeyFile", dkim_key), "SMTPDkimKeyFile");
    }
    check(smtpb_send(c, message, NULL), "warm-up send");
    double t = now();
    for (int i = 0; i < n; i++) check(smtpb_send(c, message, NULL), "smtpb_send");
    report(name, n, now() - t, NULL);
    smtpb_client_close(c);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench PORT WORKDIR [DKIM_KEY_PEM]\n");
        return 2;
    }
    const char *port = argv[1], *work = argv[2], *dkim_key = argc > 3 ? argv[3] : NULL;
    if (smtpb_abi_version() != SMTPB_ABI_VERSION) return 2;
    make_message();
    char dir[4096];

    /* 1. smtpb_send in a loop on one pooled connection (durable status). */
    sync_sends(port, 2000, "smtpb_send, in-memory client", NULL);
    {
        snprintf(dir, sizeof dir, "%s/sync", work);
        smtpb_client *c = open_client(dir, SMTPB_OPEN_DEFAULT);
        configure(c, port);
        check(smtpb_send(c, message, NULL), "warm-up send");
        double t = now();
        for (int i = 0; i < 1000; i++) check(smtpb_send(c, message, NULL), "smtpb_send");
        report("smtpb_send, durable (data_dir)", 1000, now() - t, NULL);
        smtpb_client_close(c);
    }

    /* 2. Durable enqueue (outbox paused, so only the spool is measured). */
    snprintf(dir, sizeof dir, "%s/outbox", work);
    {
        smtpb_client *c = open_client(dir, SMTPB_OPEN_PAUSED);
        configure(c, port);
        double t = now();
        for (int i = 0; i < 1000; i++) check(smtpb_enqueue(c, message, NULL), "smtpb_enqueue");
        report("smtpb_enqueue, durable", 1000, now() - t, "fdatasync per message");
        /* 3. Drain those 1,000 to the sink. */
        t = now();
        check(smtpb_outbox_resume(c, NULL), "smtpb_outbox_resume");
        check(smtpb_flush(c, UINT32_MAX), "smtpb_flush");
        report("drain 1,000 queued (1 thread)", 1000, now() - t, NULL);
        smtpb_client_close(c);
    }

    /* 4. Open with 10,000 messages queued in the spool. */
    snprintf(dir, sizeof dir, "%s/open", work);
    {
        smtpb_client *c = open_client(dir, SMTPB_OPEN_PAUSED);
        configure(c, port);
        for (int i = 0; i < 10000; i++) check(smtpb_enqueue(c, message, NULL), "smtpb_enqueue");
        smtpb_client_close(c);
        double t = now();
        c = open_client(dir, SMTPB_OPEN_PAUSED);
        double opened = now() - t;
        char *stats = NULL;
        check(smtpb_outbox_stats(c, &stats), "smtpb_outbox_stats");
        char extra[64];
        snprintf(extra, sizeof extra, "open took %.1f ms", opened * 1000);
        report("smtpb_client_open, 10,000 queued", 10000, opened, extra);
        smtpb_string_free(stats);
        smtpb_client_close(c);
    }

    /* 5. Merge 10,000 recipients into the durable outbox. */
    snprintf(dir, sizeof dir, "%s/merge", work);
    {
        size_t cap = 10000 * 96 + 16;
        char *recipients = malloc(cap);
        size_t len = 0;
        len += (size_t)snprintf(recipients + len, cap - len, "[");
        for (int i = 0; i < 10000; i++)
            len += (size_t)snprintf(recipients + len, cap - len,
                                    "%s{\"email\":\"client%d@example.com\",\"fields\":{\"Name\":\"Client %d\"}}",
                                    i ? "," : "", i, i);
        snprintf(recipients + len, cap - len, "]");
        const char *template_json =
            "{\"subject\":\"Your statement, {{Name}}\",\"html\":\"<p>Dear {{Name}},</p><p>please find your "
            "statement of account for November.</p>\"}";
        smtpb_client *c = open_client(dir, SMTPB_OPEN_PAUSED);
        configure(c, port);
        struct rusage before, after;
        getrusage(RUSAGE_SELF, &before);
        double t = now();
        char *batch = NULL;
        check(smtpb_merge(c, template_json, recipients, &batch), "smtpb_merge");
        double took = now() - t;
        getrusage(RUSAGE_SELF, &after);
        char extra[96];
        snprintf(extra, sizeof extra, "peak RSS of the process %.1f MB", after.ru_maxrss / 1024.0);
        report("smtpb_merge 10,000 recipients", 10000, took, extra);
        smtpb_string_free(batch);
        smtpb_client_close(c);
        free(recipients);
    }

    /* 6. Signed against unsigned sends. */
    if (dkim_key) sync_sends(port, 1000, "smtpb_send, DKIM rsa-sha256", dkim_key);
    return 0;
}
