/*
 * Open addressing index shared by shardmap and cache (internal to src/core).
 *
 * The index is an array of 64-bit slots. A slot is 0 when empty, otherwise a
 * tagged pointer to an entry that the owner allocated:
 *
 *   bits 63..48  tag: the top 16 bits of the key's 64-bit hash
 *   bits 47..2   address of the entry (entries are at least 4-byte aligned)
 *   bit 1        flag bit for the owner (the cache marks entries that have
 *                an expiry time with it)
 *   bit 0        mark bit for the owner (the cache keeps its CLOCK reference
 *                bit there)
 *
 * The index preserves both owner bits when it moves a slot and never reads
 * them.
 *
 * A lookup compares the tag before it touches the entry, so a probe that
 * passes a slot of another key dereferences that entry once in 65536 times.
 * Eight slots fit in one 64-byte cache line.
 *
 * Probing is linear from the home slot, the low 32 bits of the hash masked
 * to the table size. Deletion shifts the rest of the cluster back instead of
 * leaving tombstones, so chains never lengthen with churn and a lookup stops
 * at the first empty slot. Linear probing was chosen over Robin Hood because
 * Robin Hood needs the probe distance of every slot it passes: reading it
 * from the entry costs a cache miss per slot, and storing it in the slot
 * would take bits from the tag. With tags, the longer unsuccessful probes of
 * linear probing cost integer compares within one or two cache lines.
 *
 * The table doubles before an insert would raise the load above 3/4. At that
 * load the expected probe lengths of linear probing, (1 + 1/(1-a))/2 for a
 * hit and (1 + 1/(1-a)^2)/2 for a miss, are 2.5 and 8.5 slots. Slots cost
 * 10.7 to 21.3 bytes per entry. The table never shrinks, so a shard keeps
 * its peak size after mass removals.
 *
 * Invariants: count < slot count; every entry is reachable from its home
 * slot without crossing an empty slot; entry->hash holds the low 32 bits of
 * the hash that placed it.
 *
 * Not thread-safe: the owner serialises every call, for shortd with the
 * shard mutex.
 */
#ifndef SHORTD_CORE_HASHTAB_H
#define SHORTD_CORE_HASHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Start of every entry in the index. The owner allocates the entry with room
 * for the key and whatever it stores after the key.
 */
struct hashtab_entry {
    uint32_t hash;       /* low 32 bits of the key's hash; set by hashtab__insert */
    uint32_t aux;        /* owner's field: the cache keeps the value length here */
    uint8_t key_len;     /* key length in bytes */
    uint8_t flags;       /* owner's field */
    unsigned char key[]; /* key_len bytes, then the owner's data */
};

struct hashtab {
    uint64_t *slots;
    uint32_t mask;  /* slot count - 1; the slot count is a power of two */
    uint32_t count; /* occupied slots */
};

/* Position returned by hashtab__find when the key is absent. */
#define HASHTAB_NONE SIZE_MAX

#define HASHTAB_TAG_MASK  UINT64_C(0xffff000000000000)
#define HASHTAB_ADDR_MASK UINT64_C(0x0000fffffffffffc)
#define HASHTAB_FLAG      UINT64_C(2)
#define HASHTAB_MARK      UINT64_C(1)

/* Allocates an empty table of 8 slots. Returns 0 or -ENOMEM. */
int hashtab__init(struct hashtab *table);

/* Frees the slot array. The entries belong to the owner and stay allocated. */
void hashtab__fini(struct hashtab *table);

/*
 * Returns whether entry can be stored in a slot: its address must fit in
 * 48 bits and be a multiple of 4. With 5-level paging, Linux on x86-64 maps user space
 * above 47 bits only for an mmap whose hint address asks for it (kernel
 * documentation, arch/x86/x86_64/5level-paging.rst), so malloc results fit.
 * Owners check every entry anyway and treat a failure like a failed
 * allocation, which covers other targets.
 */
static inline bool hashtab__addressable(const void *entry)
{
    return ((uint64_t)(uintptr_t)entry & ~HASHTAB_ADDR_MASK) == 0;
}

/*
 * Makes room for one more entry, doubling the slot array when the load
 * would pass 3/4. Returns 0, or -ENOMEM when the array cannot grow (the
 * table is unchanged). Positions returned by hashtab__find before the call
 * are invalid after it.
 */
int hashtab__reserve(struct hashtab *table);

/*
 * Stores entry, whose key must be absent, and sets entry->hash. The caller
 * must have called hashtab__reserve since the last insert. Returns the
 * position of the new slot, valid until the next change to the table.
 */
size_t hashtab__insert(struct hashtab *table, uint64_t hash, struct hashtab_entry *entry);

/*
 * Removes the entry at pos by shifting the rest of its cluster back.
 * Positions of other entries may change; entries move only towards lower
 * positions, wrapping from slot 0 to the last slot.
 */
void hashtab__delete_at(struct hashtab *table, size_t pos);

static inline struct hashtab_entry *hashtab__entry(uint64_t slot)
{
    return (struct hashtab_entry *)(uintptr_t)(slot & HASHTAB_ADDR_MASK);
}

/* Returns the position of the key's slot, or HASHTAB_NONE when it is absent. */
static inline size_t hashtab__find(const struct hashtab *table, uint64_t hash, const void *key,
                                   size_t key_len)
{
    uint64_t tag = hash & HASHTAB_TAG_MASK;
    size_t pos = (uint32_t)hash & table->mask;

    for (;;) {
        uint64_t slot = table->slots[pos];

        if (slot == 0)
            return HASHTAB_NONE;

        if ((slot & HASHTAB_TAG_MASK) == tag) {
            const struct hashtab_entry *entry = hashtab__entry(slot);

            if (entry->hash == (uint32_t)hash && entry->key_len == key_len &&
                (key_len == 0 || memcmp(entry->key, key, key_len) == 0))
                return pos;
        }

        pos = (pos + 1) & table->mask;
    }
}

#endif
