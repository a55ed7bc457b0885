/* jsonmem — see jsonmem.h. */
#include "daemon/jsonmem.h"

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static json_malloc_t next_malloc; /* the allocator installed before ours */
static json_free_t next_free;
static _Thread_local uint64_t failures;

static void *counting_malloc(size_t size)
{
    void *p = next_malloc(size);
    if (p == NULL)
        failures++;
    return p;
}

static void counting_free(void *p)
{
    next_free(p);
}

static void install(void)
{
    json_get_alloc_funcs(&next_malloc, &next_free);
    json_set_alloc_funcs(counting_malloc, counting_free);
}

void jsonmem_install(void)
{
    pthread_once(&once, install);
}

uint64_t jsonmem_failures(void)
{
    return failures;
}
