/*
 * Inside libplexa: the value type and its conversion to and from the
 * wire's Value (proto/plexa.proto), shared by plx_value.c, the request builders and decoders (plx_rq_*.c), the C API calls
 * and plx_unpickle.c.
 *
 * Payloads (bytes, array data, pickle streams) live in reference-counted
 * plx_buf_t: a value sent in a frame and a value received from one share
 * their memory with the frame instead of copying it.
 */
#ifndef PLX_VALUE_INT_H
#define PLX_VALUE_INT_H

#include "plexa.pb-c.h"
#include "plexa/client.h"
#include "plx_buf.h"
#include "plx_frame.h"
#include "plx_rq.h"   /* the values over buffers it exports */

/* Deepest list nesting accepted either way (as core/pyvalue). */
#define PLX_VALUE_MAX_DEPTH 64

struct plx_value {
    plx_value_kind_t kind;
    union {
        int     b;
        int64_t i;
        double  f;
        char   *s;
        plx_buf_t *bytes;
        struct {
            plx_buf_t  *buf;
            char       *dtype_str;
            plx_dtype_t dtype;
            size_t      ndim;
            size_t     *shape;
            size_t      offset;     /* first byte in buf (views of a parent) */
            size_t      nbytes;
            int         fortran;
        } arr;
        struct {
            plx_value_t **items;
            size_t        n, cap;
            int           tuple;
        } list;
        struct {
            plx_buf_t  *buf;
            plx_buf_t **oob;
            size_t      noob;
        } pickle;
        struct {
            int32_t engine;
            char   *key;
        } ref;
    } u;
};

/* A value of kind with nothing filled in. */
plx_value_t *plx_value_alloc(plx_value_kind_t kind);

/* A list or tuple over items[0..n), which stay the caller's: only for
 * reading (sending); free it with plx_value_borrowing_free, which frees
 * neither the items nor their array. NULL on ENOMEM. */
plx_value_t *plx_value_list_borrowing(plx_value_t *const *items, size_t n, int tuple);
void plx_value_borrowing_free(plx_value_t **v);

/* The dtype enum of a numpy dtype string, PLX_DTYPE_OTHER if not ours. */
plx_dtype_t plx_dtype_from_str(const char *s);
/* The numpy dtype.str of one of ours ("<f8", ...). */
const char *plx_dtype_str(plx_dtype_t dtype);

/*
 * Fill *out (initialised here) from v. Payload buffers are appended to
 * msg (by reference, no copy) and named by their index in msg. Sub-
 * messages and strings of *out are allocated: free them with
 * plx_value_wire_clear, also after a failure.
 */
int plx_value_to_wire(const plx_value_t *v, Plexa__Value *out, plx_msg_t *msg,
                      plx_err_t *err);
void plx_value_wire_clear(Plexa__Value *v);

/*
 * The value for wire value w whose buffer indices refer to bufs[0..nbufs)
 * (referenced, not copied). NULL with err set (PLX_EPROTO for a malformed
 * value, naming what is wrong; PLX_ENOMEM).
 */
plx_value_t *plx_value_from_wire(const Plexa__Value *w, plx_buf_t *const *bufs, size_t nbufs,
                                 plx_err_t *err);

/*
 * Read a pickled dict of str keys (a string task's pulled names) into
 * names/values (n entries, caller frees each with free / plx_value_destroy
 * and the arrays with free). Understands what cloudpickle writes for
 * None, bool, int (64-bit), float, str, bytes, lists, tuples and
 * contiguous numpy arrays; PLX_EINVAL for anything else (the caller then
 * keeps the pickle opaque).
 */
int plx_unpickle_dict(const plx_value_t *pickle, char ***names, plx_value_t ***values,
                      size_t *n, plx_err_t *err);

#endif
