/* container_of: the struct that embeds a member, from the member's address. */
#ifndef SHORTD_CORE_CONTAINER_OF_H
#define SHORTD_CORE_CONTAINER_OF_H

#include <stddef.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
