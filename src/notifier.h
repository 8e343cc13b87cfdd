/*
 * notifier.h: the coalesced notifier (notifier.c): make sure this
 * database's background worker runs.  Takes a conditional advisory lock only.
 *
 * Layer: storage
 */
#ifndef PL_NOTIFIER_H
#define PL_NOTIFIER_H

#include "postgres.h"

extern void pl_notifier_ensure(int64 event_id);

#endif							/* PL_NOTIFIER_H */
