/* fit_plot.c — the loss curve of df_fit's CSV log as a self-contained SVG
 * (no plotting dependency). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dagflow.h"

typedef struct series { double *x, *y; int n, cap; } series;

static bool push(series *s, double x, double y)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 1024;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx) return false;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny) return false;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return true;
}

static df_status read_csv(const char *path, series *train, series *val)
{
    FILE *f = fopen(path, "r");
    if (!f) return df_error(DF_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    char line[256];
    df_status st = DF_OK;
    while (st == DF_OK && fgets(line, sizeof line, f)) {
        int epoch;
        long long step;
        char loss[64] = "", vloss[64] = "";
        if (sscanf(line, "%d,%lld,%63[^,\n],%63[^\n]", &epoch, &step, loss, vloss) >= 3) {
            if (!push(train, (double)step, atof(loss))) st = df_error(DF_ERR_NOMEM, "out of memory plotting");
        } else if (sscanf(line, "%d,%lld,,%63[^\n]", &epoch, &step, vloss) == 3) {
            if (!push(val, (double)step, atof(vloss))) st = df_error(DF_ERR_NOMEM, "out of memory plotting");
        }
    }
    fclose(f);
    return st;
}

static void polyline(FILE *f, const series *s, double x0, double x1, double y0, double y1, const char *style)
{
    const double W = 720, H = 400, L = 60, T = 20;
    fprintf(f, "<polyline fill=\"none\" %s points=\"", style);
    for (int i = 0; i < s->n; i++)
        fprintf(f, "%.1f,%.1f ", L + (s->x[i] - x0) / (x1 - x0) * W, T + (y1 - s->y[i]) / (y1 - y0) * H);
    fprintf(f, "\"/>\n");
}

static void write_svg(FILE *f, const series *train, const series *val)
{
    double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    for (int i = 0; i < train->n; i++) {
        x1 = fmax(x1, train->x[i]);
        y1 = fmax(y1, train->y[i]);
    }
    y1 = ceil(y1);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"470\" font-family=\"sans-serif\" font-size=\"12\">\n");
    fprintf(f, "<rect width=\"800\" height=\"470\" fill=\"white\"/>\n");
    fprintf(f, "<line x1=\"60\" y1=\"420\" x2=\"780\" y2=\"420\" stroke=\"black\"/><line x1=\"60\" y1=\"20\" x2=\"60\" y2=\"420\" stroke=\"black\"/>\n");
    for (int k = 0; k <= (int)y1; k++)
        fprintf(f, "<text x=\"30\" y=\"%.1f\">%d</text><line x1=\"60\" y1=\"%.1f\" x2=\"780\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                420 - k / y1 * 400 + 4, k, 420 - k / y1 * 400, 420 - k / y1 * 400);
    fprintf(f, "<text x=\"380\" y=\"455\">step (of %.0f)</text><text x=\"70\" y=\"15\">loss</text>\n", x1);
    polyline(f, train, x0, x1, y0, y1, "stroke=\"steelblue\" stroke-width=\"1\"");
    if (val->n) polyline(f, val, x0, x1, y0, y1, "stroke=\"darkorange\" stroke-width=\"2\"");
    fprintf(f, "<text x=\"600\" y=\"40\" fill=\"steelblue\">training loss</text>\n");
    if (val->n) fprintf(f, "<text x=\"600\" y=\"58\" fill=\"darkorange\">validation loss</text>\n");
    fprintf(f, "</svg>\n");
}

df_status df_plot_loss_csv(const char *csv_path, const char *svg_path)
{
    series train = {0}, val = {0};
    df_status st = read_csv(csv_path, &train, &val);
    char tmp[4096];
    if (st == DF_OK && snprintf(tmp, sizeof tmp, "%s.tmp", svg_path) >= (int)sizeof tmp)
        st = df_error(DF_ERR_ARG, "plot path too long");
    if (st == DF_OK) {
        FILE *f = fopen(tmp, "w");
        if (!f) st = df_error(DF_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        else {
            write_svg(f, &train, &val);
            bool ok = !ferror(f);
            if (fclose(f) != 0) ok = false;
            if (!ok || rename(tmp, svg_path) != 0) {
                remove(tmp);
                st = df_error(DF_ERR_IO, "cannot write %s", svg_path);
            }
        }
    }
    free(train.x); free(train.y); free(val.x); free(val.y);
    return st;
}
