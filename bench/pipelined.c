/*
 * The reference for the send path: a minimal SMTP client that does only
 * what the wire needs. It reads FILE once (a message with LF or CRLF line
 * ends), makes it CRLF and dot-stuffed once, then sends it N times over
 * one connection: MAIL, RCPT and DATA in one write (PIPELINING), the
 * message and the final dot in one write, two round trips a message,
 * nothing built or encoded per message. What smtpb_send does on top of
 * this is the library's cost.
 *
 *   pipelined PORT N FILE [NAME]
 *
 * Prints one line as bench.c does: name, count, seconds, rate.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int sock;
static char replies[65536];
static size_t have;

static void die(const char *what) {
    fprintf(stderr, "pipelined: %s\n", what);
    exit(1);
}

/* Reads until `count` final reply lines ("250 ...", not "250-...") have come;
 * each must be of class 2 or 3. */
static void read_replies(int count) {
    while (count > 0) {
        char *end;
        while (count > 0 && (end = memchr(replies, '\n', have)) != NULL) {
            size_t line = (size_t)(end - replies) + 1;
            if (line < 4 || (replies[0] != '2' && replies[0] != '3')) die("the server refused a command");
            if (replies[3] != '-') count--;
            memmove(replies, replies + line, have - line);
            have -= line;
        }
        if (count == 0) break;
        ssize_t n = read(sock, replies + have, sizeof replies - have);
        if (n <= 0) die("the connection closed");
        have += (size_t)n;
    }
}

static void write_all(const char *bytes, size_t len) {
    while (len > 0) {
        ssize_t n = write(sock, bytes, len);
        if (n <= 0) die("write failed");
        bytes += n;
        len -= (size_t)n;
    }
}

/* FILE as DATA sends it: CRLF line ends, leading dots doubled, ".\r\n" after. */
static char *load(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open the message file");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *raw = malloc((size_t)size + 1), *out = malloc((size_t)size * 3 + 8);
    if (!raw || !out || fread(raw, 1, (size_t)size, f) != (size_t)size) die("cannot read the message file");
    fclose(f);
    size_t o = 0;
    int line_start = 1;
    for (long i = 0; i < size; i++) {
        if (line_start && raw[i] == '.') out[o++] = '.';
        line_start = 0;
        if (raw[i] == '\n') {
            if (o == 0 || out[o - 1] != '\r') out[o++] = '\r';
            line_start = 1;
        }
        out[o++] = raw[i];
    }
    if (o < 2 || out[o - 1] != '\n') out[o++] = '\r', out[o++] = '\n';
    memcpy(out + o, ".\r\n", 3);
    *len = o + 3;
    free(raw);
    return out;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: pipelined PORT N FILE [NAME]\n");
        return 2;
    }
    int n = atoi(argv[2]);
    size_t len;
    char *message = load(argv[3], &len);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sock = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) die("cannot connect");
    read_replies(1);
    const char *ehlo = "EHLO bench.example\r\n";
    write_all(ehlo, strlen(ehlo));
    read_replies(1);
    const char *envelope = "MAIL FROM:<bench@firm.example>\r\nRCPT TO:<sink@example.com>\r\nDATA\r\n";
    size_t envelope_len = strlen(envelope);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        write_all(envelope, envelope_len);
        read_replies(3);
        write_all(message, len);
        read_replies(1);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    write_all("QUIT\r\n", 6);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%-44s %6d %8.3f %9.0f/s  %s\n", argc > 4 ? argv[4] : "minimal pipelined client", n, took, n / took,
           "reference");
    close(sock);
    free(message);
    return 0;
}
