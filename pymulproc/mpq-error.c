/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"

/**
 * mpq_error_quark:
 *
 * The error domain of the library, `MPQ_ERROR`.
 *
 * Returns: the error quark
 */
G_DEFINE_QUARK (mpq-error-quark, mpq_error)
