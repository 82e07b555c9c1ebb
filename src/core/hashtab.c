/* Open addressing index shared by shardmap and cache, see hashtab.h. */
#include "core/hashtab.h"

#include <errno.h>
#include <stdlib.h>

#define INITIAL_SLOTS 8u

/* Largest slot count: positions and counts stay within 32 bits. */
#define MAX_SLOTS (UINT32_C(1) << 31)

/* Entries allowed before the next insert must grow the table: 3/4 of the slots. */
static uint32_t load_limit(uint32_t mask)
{
    return (uint32_t)(((uint64_t)mask + 1) / 4 * 3);
}

/* Puts slot into the first empty position from its home and returns that position. */
static size_t place(uint64_t *slots, uint32_t mask, uint32_t hash, uint64_t slot)
{
    size_t pos = hash & mask;

    while (slots[pos] != 0)
        pos = (pos + 1) & mask;
    slots[pos] = slot;
    return pos;
}

int hashtab__init(struct hashtab *table)
{
    table->slots = calloc(INITIAL_SLOTS, sizeof(*table->slots));
    if (table->slots == NULL)
        return -ENOMEM;

    table->mask = INITIAL_SLOTS - 1;
    table->count = 0;
    return 0;
}

void hashtab__fini(struct hashtab *table)
{
    free(table->slots);
    table->slots = NULL;
}

int hashtab__reserve(struct hashtab *table)
{
    uint32_t new_mask;
    uint64_t *slots;

    if (table->count + 1 <= load_limit(table->mask))
        return 0;

    if ((uint64_t)table->mask + 1 >= MAX_SLOTS)
        return -ENOMEM;

    new_mask = table->mask * 2 + 1;
    slots = calloc((size_t)new_mask + 1, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;

    /* The tag and the owner bits travel with the slot; only the position changes. */
    for (size_t pos = 0; pos <= table->mask; pos++) {
        uint64_t slot = table->slots[pos];

        if (slot != 0)
            (void)place(slots, new_mask, hashtab__entry(slot)->hash, slot);
    }

    free(table->slots);
    table->slots = slots;
    table->mask = new_mask;
    return 0;
}

size_t hashtab__insert(struct hashtab *table, uint64_t hash, struct hashtab_entry *entry)
{
    entry->hash = (uint32_t)hash;
    table->count++;
    return place(table->slots, table->mask, (uint32_t)hash,
                 (hash & HASHTAB_TAG_MASK) | (uint64_t)(uintptr_t)entry);
}

void hashtab__delete_at(struct hashtab *table, size_t pos)
{
    size_t hole = pos;

    /*
     * Walk the rest of the cluster. An entry may fill the hole when its home
     * is not cyclically inside (hole, pos]: then the hole lies on its probe
     * path, and moving it back keeps it reachable.
     */
    for (;;) {
        uint64_t slot;
        size_t home;

        pos = (pos + 1) & table->mask;
        slot = table->slots[pos];
        if (slot == 0)
            break;

        home = hashtab__entry(slot)->hash & table->mask;
        if (((pos - home) & table->mask) >= ((pos - hole) & table->mask)) {
            table->slots[hole] = slot;
            hole = pos;
        }
    }

    table->slots[hole] = 0;
    table->count--;
}
