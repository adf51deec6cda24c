/* Golden kernels for the VEO contract tests: each is checked against numpy. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

long counter_value = 0;            /* a writable data symbol (get_symbol) */
const int table_ro[4] = {1, 2, 3, 4}; /* a read-only data symbol */

double sum(const double *a, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += a[i];
    return s;
}

int scale(double *a, int n, double factor)
{
#pragma _NEC vector
    for (int i = 0; i < n; i++)
        a[i] *= factor;
    return n;
}

double average(const double *a, long n)
{
    return n > 0 ? sum(a, (int)n) / (double)n : 0.0;
}

void axpy(double *y, const double *x, int n, double alpha)
{
    for (int i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

int fill(double *out, int n, double value)
{
    for (int i = 0; i < n; i++)
        out[i] = value;
    return n;
}

int increment(int32_t *a, int n)
{
    for (int i = 0; i < n; i++)
        a[i] += 1;
    return n;
}

float fmul(float x, float y) { return x * y; }

long add64(long a, long b) { return a + b; }

unsigned int umax(void) { return 0xffffffffu; }

double *offset(double *p, long k) { return p + k; }

int bump(void) { return (int)++counter_value; }

/* Appends value to log: log[0] is the count, entries follow (FIFO order checks). */
int append(long *log, long value)
{
    log[++log[0]] = value;
    return (int)log[0];
}

int slow(int milliseconds)
{
    struct timespec pause = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};
    nanosleep(&pause, 0);
    return milliseconds;
}

int hang(void)
{
    for (;;) {
        struct timespec pause = {1, 0};
        nanosleep(&pause, 0);
    }
    return 0;
}

int divide(int a, int b)
{
    volatile int d = b;
    return a / d;
}

int crash(void)
{
    volatile int *nowhere = 0;
    return *nowhere;
}

int quit(int code)
{
    exit(code);
    return 0;
}
