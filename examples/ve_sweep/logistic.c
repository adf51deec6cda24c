/* The logistic map x <- r x (1 - x), iterated `steps` times from x0.
 * The last `keep` values go to `tail`; the return value is how many of those values
 * are distinct (to 1e-9): 1 for a fixed point, 2, 4, ... for cycles, many for chaos.
 */
#include <math.h>

int logistic(double *tail, int keep, int steps, double r, double x0) {
    double x = x0;
    for (int i = 0; i < steps; i++) {
        x = r * x * (1.0 - x);
        if (i >= steps - keep) tail[i - (steps - keep)] = x;
    }
    int distinct = 0;
#pragma _NEC ivdep
    for (int i = 0; i < keep; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) if (fabs(tail[i] - tail[j]) < 1e-9) { seen = 1; break; }
        distinct += !seen;
    }
    return distinct;
}
