/*
 * guc.h: defining the extension's settings (guc.c).  The variables are
 * declared in pipeline.h, the common header.
 *
 * Layer: storage
 */
#ifndef PL_GUC_H
#define PL_GUC_H

#include "pipeline.h"

extern void pl_guc_init(void);

#endif							/* PL_GUC_H */
