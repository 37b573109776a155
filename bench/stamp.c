/* A handler for the latency benchmark: records when it started (CLOCK_REALTIME,
 * nanoseconds) next to the eventId, then drains stdin. Written in C so that the
 * measurement is not dominated by an interpreter's start-up. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *out = getenv("STAMP_FILE");
    const char *id = getenv("AUTOD_EVENT_ID");
    if (out && id) {
        FILE *f = fopen(out, "a");
        if (f) {
            fprintf(f, "%s %lld\n", id, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
            fclose(f);
        }
    }
    char buf[4096];
    while (read(0, buf, sizeof buf) > 0) {
    }
    return 0;
}
