/* sessid: stable random session ids per API key, with a sliding TTL. The C core, whole.
 *
 *   status.h   status codes and their text
 *   digest.h   SHA-256 of API keys (OpenSSL EVP) and its hex form
 *   idgen.h    random version 4 UUIDs and their canonical text
 *   clock.h    the default monotonic clock
 *   table.h    the sliding-TTL table, in this process or in a file every process of the host
 *              shares (table.c; its memory in table_layout.h, growth.c for a private table's
 *              growth, quick.c for lock-free hits, repair.c for what a death inside a shared
 *              table leaves behind)
 *   lock.h     the table's locks: private, or robust and process-shared
 *   shared.h   a shared table's file
 *   kv.h       the KV backend vtable
 *   proto.h    the get-or-create protocol over a KV, as a state machine (and, for the tests, its
 *              sync driver)
 *
 * Beside them, not part of the contract: diagnostics.h (a table's dump and check, in every build),
 * and for tests only, table_testing.h (growth hooks, SESSID_TESTING) and faults.h (deaths and failed
 * allocations on demand, SESSID_FAULT_INJECTION).
 *
 * Nothing here knows about Python.
 */
#ifndef SESSID_H
#define SESSID_H

#include "clock.h"
#include "digest.h"
#include "idgen.h"
#include "kv.h"
#include "proto.h"
#include "status.h"
#include "table.h"

#endif
