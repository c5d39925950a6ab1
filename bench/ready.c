/* The start-order benchmark's service: records when it started, becomes ready DELAY_MS later
 * (records that too), says so the way it is told, then waits to be stopped.
 *
 *   ready LOG NAME DELAY_MS notify|fd=N|none
 *
 * Appends "<NAME> start <CLOCK_MONOTONIC ns>\n" and "<NAME> ready <ns>\n" to LOG, each in one
 * write(2) (O_APPEND keeps lines whole). notify: READY=1 to $NOTIFY_SOCKET ('@' = abstract);
 * fd=N: a newline on fd N (s6); none: nothing (for a supervisor that cannot be told). */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void note(const char *log, const char *name, const char *what) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char line[128];
    int n = snprintf(line, sizeof line, "%s %s %lld\n", name, what, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0 || write(fd, line, n) != n) exit(1);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    note(argv[1], argv[2], "start");
    long ms = atol(argv[3]);
    struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0) {}
    note(argv[1], argv[2], "ready");
    if (strcmp(argv[4], "notify") == 0) {
        const char *addr = getenv("NOTIFY_SOCKET");
        if (!addr) return 3;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t len = strlen(addr);
        if (len >= sizeof sa.sun_path) return 3;
        memcpy(sa.sun_path, addr, len);
        if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0 || sendto(s, "READY=1", 7, 0, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + len) != 7) return 4;
        close(s);
    } else if (strncmp(argv[4], "fd=", 3) == 0) {
        int fd = atoi(argv[4] + 3);
        if (write(fd, "\n", 1) != 1) return 5;
        close(fd);
    }
    for (;;) pause();
}
