// Asking for a cache line ahead of its use, in a way the compiler keeps.
//
// GCC takes __builtin_prefetch for an instruction without side effects, so a function that does
// nothing but prefetch (the store's prefetch_insert(), a table's prefetch()) is found to be pure,
// and a call to it, whose result (void) nobody uses, is deleted whole once it is not inlined
// early: GCC 12 at -O2 and -O3 dropped every prefetch the store asked for, and kept only those
// written inline in a larger function. The empty volatile asm is a side effect the compiler must
// keep, with the address as its input: no instruction, and the call stays.
#pragma once

namespace gatehouse::filters::cache {

// For a read (rw 0) or a write (rw 1) soon, to be kept in every level of the caches.
template <int rw = 0>
inline void prefetch(const void* line) {
  __builtin_prefetch(line, rw, 3);
  asm volatile("" : : "r"(line));
}

}  // namespace gatehouse::filters::cache
