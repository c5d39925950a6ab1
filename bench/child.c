/* The benchmark's service: records when its first line of code ran, then waits to be killed.
 * Appends "<pid> <CLOCK_MONOTONIC ns>\n" to the file named by argv[1] in one write(2). */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (argc < 2) return 2;
    char line[64];
    int n = snprintf(line, sizeof line, "%d %lld\n", (int)getpid(), (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0 || write(fd, line, n) != n) return 1;
    close(fd);
    for (;;) pause();
}
