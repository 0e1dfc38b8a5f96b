/* What notice/_fastaggregate.c offers other extensions' C code (its capsule, `_fastaggregate.API`): a detector's C
 * path folds a notice it would hand to the aggregator's filter before it makes it (detect/_fastflows.c). */
#ifndef ICMPSENSOR_AGGREGATE_API_H
#define ICMPSENSOR_AGGREGATE_API_H

#include <Python.h>

#define AGGREGATE_API_CAPSULE "icmpsensor.notice._fastaggregate.API"

typedef struct {
    /* _fastaggregate.Filter: NoticeAggregator.stop_hooks' filter, bound to its aggregator */
    PyTypeObject *filter_type;
    /* For a notice the filter would be handed next, with no notice before it still to be handed to it: 1 where
     * filter([notice]) would fold it and tell nothing (it is folded and counted as filter would, and the notice need
     * not be made), 0 where it might do anything else (nothing changed: make the notice and hand it to the filter),
     * -1 with an exception. Its fields as Notice's (borrowed). */
    int (*try_fold)(PyObject *filter, PyObject *ts, PyObject *note, PyObject *src, PyObject *dst, PyObject *uid,
                    PyObject *bytes_sent);
} AggregateApi;

#endif
