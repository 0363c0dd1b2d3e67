/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "mpq-error.h"

G_DEFINE_QUARK (mpq-error-quark, mpq_error)
