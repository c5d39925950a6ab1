/* The floor: the least any supervisor can do. fork, exec, wait, again. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: floor PROGRAM ARGS...\n"); return 2; }
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) { execv(argv[1], argv + 1); _exit(127); }
        if (pid < 0) return 1;
        int status;
        while (waitpid(pid, &status, 0) < 0) {}
    }
}
