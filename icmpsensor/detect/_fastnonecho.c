/* The walks of detect/nonecho.py in C: a node information reply's names, neighbour discovery options, RFC 4884
 * extension objects. Each walks at most `budget` items (nonecho.MAX_WALKED) of a message an attacker may have built
 * of the smallest items there are (a 60 KB datagram of one-letter names); in Python that cost ~0.1 ms a message.
 * The Python functions (_names_walk_reference, _nd_option_bytes_reference, _nd_option_first_reference: a redirect's
 * redirected headers, _extension_objects_reference) are the reference, and tests/unit/test_fastnonecho.py holds the two equal; the tables stay in nonecho.py, handed over as
 * arguments. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* nonecho._ldh_name: the length of the DNS wire-format name at d[start:] (n bytes in all) whose labels are
 * hostname characters (ldh[byte] set), its end within `limit` bytes of start, or -1. */
static Py_ssize_t ldh_name(const unsigned char *ldh, const unsigned char *d, Py_ssize_t n, Py_ssize_t start,
                           Py_ssize_t limit)
{
    Py_ssize_t pos = start, end = limit < n - start ? start + limit : n;
    while (pos < end) {
        Py_ssize_t size = d[pos];
        if (size == 0)
            return pos + 1 < n && d[pos + 1] == 0 && pos > start ? pos - start + 2 : pos - start + 1;
        if (size > 63 || size > n - pos - 1)
            return -1;
        for (Py_ssize_t i = pos + 1; i <= pos + size; i++)
            if (!ldh[d[i]])
                return -1;
        pos += 1 + size;
    }
    return -1;
}

static int walk_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *usage, Py_ssize_t *pos,
                     Py_ssize_t *budget)
{
    if (nargs != want || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    *pos = PyLong_AsSsize_t(args[1]);
    *budget = PyLong_AsSsize_t(args[nargs - 1]);
    if ((*pos == -1 || *budget == -1) && PyErr_Occurred())
        return -1;
    if (*pos < 0 || *budget < 0) {
        PyErr_SetString(PyExc_ValueError, usage);
        return -1;
    }
    return 0;
}

#define NAMES_ARGS "names_walk(data: bytes, pos: int, hostname_bytes: bytes, budget: int) -> int"
PyDoc_STRVAR(names_walk_doc, NAMES_ARGS "\n\n"
                             "nonecho._names_walk_reference: the bytes of data[pos:] past up to `budget` names whose\n"
                             "labels are of hostname_bytes (nonecho._LDH).");

static PyObject *names_walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    Py_ssize_t pos, budget;
    if (walk_args(args, nargs, 4, NAMES_ARGS, &pos, &budget) < 0)
        return NULL;
    if (!PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, NAMES_ARGS);
        return NULL;
    }
    unsigned char ldh[256] = {0};
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(args[2]); i++)
        ldh[(unsigned char)PyBytes_AS_STRING(args[2])[i]] = 1;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    for (Py_ssize_t k = 0; k < budget; k++) {
        if (pos >= n)
            return PyLong_FromLong(0);
        Py_ssize_t size = ldh_name(ldh, d, n, pos, 255);
        if (size < 0)
            return PyLong_FromSsize_t(n - pos);
        pos += size;
    }
    return PyLong_FromSsize_t(pos < n ? n - pos : 0);
}

#define ND_ARGS "nd_option_bytes(payload: bytes, pos: int, allowed: bytes, units: bytes, nonce: int, cga: int, " \
                "budget: int) -> (int, int)"
PyDoc_STRVAR(nd_option_bytes_doc,
             ND_ARGS "\n\n"
                     "nonecho._nd_option_bytes_reference: the unexplained bytes of the options at payload[pos:] and\n"
                     "the nonce bytes left to judge; `allowed` and `units` are 256-byte tables by option type (1: the\n"
                     "message carries it; its largest size in 8-byte units, 0: any).");

static PyObject *nd_option_bytes(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    Py_ssize_t pos, budget;
    if (walk_args(args, nargs, 7, ND_ARGS, &pos, &budget) < 0)
        return NULL;
    if (!PyBytes_Check(args[2]) || PyBytes_GET_SIZE(args[2]) != 256 || !PyBytes_Check(args[3])
        || PyBytes_GET_SIZE(args[3]) != 256) {
        PyErr_SetString(PyExc_TypeError, ND_ARGS);
        return NULL;
    }
    long nonce_option = PyLong_AsLong(args[4]), cga_option = PyLong_AsLong(args[5]);
    if ((nonce_option == -1 || cga_option == -1) && PyErr_Occurred())
        return NULL;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *allowed = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    const unsigned char *largest = (const unsigned char *)PyBytes_AS_STRING(args[3]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]), unexplained = 0, nonce = 0;
    int cga = 0;
    for (Py_ssize_t k = 0; k < budget && pos < n; k++) {
        if (pos + 2 > n || d[pos + 1] == 0 || 8 * (Py_ssize_t)d[pos + 1] > n - pos)
            return Py_BuildValue("(ni)", unexplained + n - pos, 0);
        unsigned option = d[pos], units = d[pos + 1];
        if (!allowed[option]) {
            unexplained += 8 * (Py_ssize_t)units;
        } else {
            unsigned most = largest[option];
            unexplained += most && units > most ? 8 * (Py_ssize_t)(units - most) : 0;
            nonce += option == (unsigned long)nonce_option ? 8 : 0;
            cga = cga || option == (unsigned long)cga_option;
        }
        pos += 8 * (Py_ssize_t)units;
    }
    if (pos < n) /* past the budget: the rest */
        return Py_BuildValue("(ni)", unexplained + n - pos, 0);
    return Py_BuildValue("(nn)", unexplained, cga ? 0 : nonce);
}

#define EXT_ARGS "extension_objects(payload: bytes, pos: int, largest: dict, budget: int) -> (int, int, int, int)"
PyDoc_STRVAR(extension_objects_doc,
             EXT_ARGS "\n\n"
                      "nonecho._extension_objects_reference: (problem, class, c-type, length) of the RFC 4884 objects\n"
                      "at payload[pos:]; `largest`: the largest object a router sends, by class << 8 | c-type.");

enum { OBJECTS_FINE, OBJECTS_TRAILING, OBJECT_LENGTH, OBJECT_DATA, OBJECTS_MANY }; /* nonecho._OBJECTS_* */

static PyObject *extension_objects(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    Py_ssize_t pos, budget;
    if (walk_args(args, nargs, 4, EXT_ARGS, &pos, &budget) < 0)
        return NULL;
    if (!PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, EXT_ARGS);
        return NULL;
    }
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    for (Py_ssize_t k = 0; k < budget; k++) {
        if (pos >= n)
            return Py_BuildValue("(iiii)", OBJECTS_FINE, 0, 0, 0);
        if (pos + 4 > n)
            return Py_BuildValue("(iiii)", OBJECTS_TRAILING, 0, 0, 0);
        Py_ssize_t length = d[pos] << 8 | d[pos + 1];
        int klass = d[pos + 2], ctype = d[pos + 3];
        if (length < 4 || length > n - pos)
            return Py_BuildValue("(iiii)", OBJECT_LENGTH, 0, 0, 0);
        PyObject *key = PyLong_FromLong(klass << 8 | ctype);
        if (key == NULL)
            return NULL;
        PyObject *most = PyDict_GetItemWithError(args[2], key); /* borrowed */
        Py_DECREF(key);
        Py_ssize_t largest = most == NULL ? 0 : PyLong_AsSsize_t(most);
        if (PyErr_Occurred())
            return NULL;
        if (length > largest || (klass == 1 && length % 4))
            return Py_BuildValue("(iiin)", OBJECT_DATA, klass, ctype, length);
        pos += length;
    }
    return Py_BuildValue("(iiii)", pos >= n ? OBJECTS_FINE : OBJECTS_MANY, 0, 0, 0);
}

#define FIRST_ARGS "nd_option_first(payload: bytes, pos: int, option: int, budget: int) -> (int, int, int)"
PyDoc_STRVAR(nd_option_first_doc,
             FIRST_ARGS "\n\n"
                        "nonecho._nd_option_first_reference: the (start, end) of the first ND option of type `option`\n"
                        "at payload[pos:] ((-1, -1) without one) and the bytes of the others of that type, as\n"
                        "nonecho._nd_option_spans walks them (up to `budget` options, to the first cut short or of\n"
                        "length 0).");

static PyObject *nd_option_first(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    Py_ssize_t pos, budget;
    if (walk_args(args, nargs, 4, FIRST_ARGS, &pos, &budget) < 0)
        return NULL;
    long wanted = PyLong_AsLong(args[2]);
    if (wanted == -1 && PyErr_Occurred())
        return NULL;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]), first = -1, first_end = -1, others = 0;
    for (Py_ssize_t k = 0; k < budget; k++) {
        if (pos + 2 > n || d[pos + 1] == 0 || 8 * (Py_ssize_t)d[pos + 1] > n - pos)
            break;
        Py_ssize_t end = pos + 8 * (Py_ssize_t)d[pos + 1];
        if (d[pos] == wanted) {
            if (first < 0)
                first = pos, first_end = end;
            else
                others += end - pos;
        }
        pos = end;
    }
    return Py_BuildValue("(nnn)", first, first_end, others);
}

static PyMethodDef methods[] = {
    {"nd_option_first", (PyCFunction)(void (*)(void))nd_option_first, METH_FASTCALL, nd_option_first_doc},
    {"names_walk", (PyCFunction)(void (*)(void))names_walk, METH_FASTCALL, names_walk_doc},
    {"nd_option_bytes", (PyCFunction)(void (*)(void))nd_option_bytes, METH_FASTCALL, nd_option_bytes_doc},
    {"extension_objects", (PyCFunction)(void (*)(void))extension_objects, METH_FASTCALL, extension_objects_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastnonecho", "The walks of detect/nonecho.py in C (the Python functions are the reference).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastnonecho(void)
{
    return PyModule_Create(&module);
}
