/* Internal to core/pyvalue: shared between plx_pyvalue.c and plx_recvbuffer.c. */
#ifndef PLX_PYVALUE_INT_H
#define PLX_PYVALUE_INT_H

#include "plx_pyvalue.h"

/* Export obj's memory (the buffer protocol; zero copy when contiguous) and
 * append it to msg. *idx is its index in msg. GIL held. */
int plx_pyvalue_add_buffer(PyObject *obj, plx_msg_t *msg, uint32_t *idx, plx_err_t *err);

#endif
