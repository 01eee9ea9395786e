/* plot.h — a loss curve as a self-contained SVG (no plotting dependency). */
#ifndef CR_PLOT_H
#define CR_PLOT_H
#include "dagflow.h"

/* Reads the training CSV (epoch,step,loss,val_loss) and writes an SVG with the
 * per-step loss and the validation points, atomically. */
df_status cr_plot_loss_csv(const char *csv_path, const char *svg_path);

#endif
