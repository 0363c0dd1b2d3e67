/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if !defined (MPQ_INSIDE) && !defined (MPQ_COMPILATION)
# error "Only <pymulproc/pymulproc.h> can be included directly."
#endif

#include <glib.h>

#ifndef _MPQ_EXTERN
# define _MPQ_EXTERN __attribute__((visibility ("default"))) extern
#endif

#define MPQ_AVAILABLE_IN_ALL _MPQ_EXTERN
#define MPQ_AVAILABLE_IN_1_2 _MPQ_EXTERN
