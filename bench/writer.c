/* Log throughput: writes N lines of 100 bytes to stdout as fast as it can, then reports on
 * stderr how long that took: "<lines> <seconds>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char line[101];
    memset(line, 'x', 99);
    line[99] = '\n';
    line[100] = 0;
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int k = snprintf(line, 12, "%010ld ", i);
        line[k] = 'x';
        fwrite(line, 1, 100, stdout);
    }
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "%ld %.6f\n", n, (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
