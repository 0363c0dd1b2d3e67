/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#define MPQ_INSIDE
# include "mpq-version.h"
# include "mpq-version-macros.h"
# include "mpq-protocol.h"
# include "mpq-error.h"
# include "mpq-enum-types.h"
# include "mpq-message.h"
# include "mpq-channel.h"
# include "mpq-pipe.h"
# include "mpq-queue.h"
# include "mpq-pool.h"
# include "mpq-worker.h"
#undef MPQ_INSIDE
