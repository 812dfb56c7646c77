//! A run-long arena allocator for executors, opt-in.
//!
//! An executor instance lives for one task: the sandbox instantiates it, calls
//! `execute` once and throws the whole memory away. A general-purpose allocator's
//! bookkeeping (size classes, free lists, coalescing) buys nothing there, and inside
//! the sandbox every instruction of it is metered. [`Arena`] hands out memory by
//! moving a pointer through chunks it takes from the system allocator, gives back
//! only the most recent allocation (so a growing `String` or `Vec` at the end of the
//! arena grows in place), and otherwise keeps freed memory until the run ends.
//!
//! That is the right trade for an executor whose allocations are proportional to its
//! task (the docs executor); an executor that allocates and frees in a long loop
//! should keep the default allocator, as its freed memory would not be reused and
//! the run's memory cap would stop it. Use it as the global allocator, in the
//! sandboxed build only:
//!
//! ```ignore
//! #[cfg(target_arch = "wasm32")]
//! #[global_allocator]
//! static ALLOCATOR: leviathan_executor_sdk::arena::Arena = leviathan_executor_sdk::arena::Arena::new();
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Bytes of the first chunk taken from the system allocator; later chunks double.
const FIRST_CHUNK: usize = 8 << 10;
/// The alignment of every chunk.
const CHUNK_ALIGN: usize = 16;

/// A bump allocator over chunks of the system allocator's memory (see the module
/// documentation for when to use it).
pub struct Arena {
    /// The next free byte of the current chunk.
    next: Cell<usize>,
    /// One past the current chunk's last byte.
    end: Cell<usize>,
    /// Where the most recent allocation starts (0: none that can be given back).
    last: Cell<usize>,
    /// The size of the next chunk to take.
    chunk: Cell<usize>,
}

// SAFETY: an executor component has one thread (WebAssembly without the shared-memory
// `atomics` feature cannot start another), so the cells are never touched from two
// threads. Elsewhere the arena is not `Sync`: a native build cannot make it the
// allocator of a program that may have threads (its tests use it as a plain value).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for Arena {}

impl Arena {
    /// An arena that has not taken any memory yet.
    pub const fn new() -> Arena {
        Arena {
            next: Cell::new(0),
            end: Cell::new(0),
            last: Cell::new(0),
            chunk: Cell::new(FIRST_CHUNK),
        }
    }

    /// Takes a new chunk able to hold `layout`; `None` when the system has no memory.
    fn refill(&self, layout: Layout) -> Option<()> {
        let wanted = layout.size().saturating_add(layout.align());
        let size = self.chunk.get().max(wanted);
        let chunk_layout = Layout::from_size_align(size, CHUNK_ALIGN).ok()?;
        // SAFETY: `size` is at least `FIRST_CHUNK`, never zero.
        let chunk = unsafe { System.alloc(chunk_layout) };
        if chunk.is_null() {
            return None;
        }
        self.next.set(chunk as usize);
        self.end.set(chunk as usize + size);
        self.last.set(0);
        self.chunk.set(self.chunk.get().saturating_mul(2));
        Some(())
    }

    /// The start of a block for `layout` in the current chunk, if it fits.
    fn fit(&self, layout: Layout) -> Option<usize> {
        let start = self.next.get().checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = start.checked_add(layout.size())?;
        (self.next.get() != 0 && end <= self.end.get()).then_some(start)
    }
}

impl Default for Arena {
    fn default() -> Arena {
        Arena::new()
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let fitted = self
            .fit(layout)
            .or_else(|| self.refill(layout).and_then(|()| self.fit(layout)));
        let Some(start) = fitted else {
            return std::ptr::null_mut();
        };
        self.next.set(start + layout.size());
        self.last.set(start);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // Only the most recent block can be given back; the rest waits for the run's end.
        if ptr as usize == self.last.get() {
            self.next.set(ptr as usize);
            self.last.set(0);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = ptr as usize;
        if at == self.last.get()
            && at
                .checked_add(new_size)
                .is_some_and(|e| e <= self.end.get())
        {
            // The most recent block grows or shrinks in place.
            self.next.set(at + new_size);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `new_layout` has a non-zero size (it is larger than the old one).
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live, distinct, and at least `layout.size()` long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, moved, layout.size()) };
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(arena: &Arena, size: usize, align: usize) -> *mut u8 {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: every size used here is non-zero.
        let ptr = unsafe { arena.alloc(layout) };
        assert!(!ptr.is_null());
        assert_eq!(ptr as usize % align, 0, "aligned to {align}");
        ptr
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_keep_their_bytes_across_chunks() {
        let arena = Arena::new();
        let mut blocks = Vec::new();
        // Enough to take several chunks, with a block larger than any chunk so far.
        for i in 0..2_000usize {
            let size = if i == 1_000 { 100_000 } else { 1 + i % 97 };
            let align = 1 << (i % 5);
            let ptr = alloc(&arena, size, align);
            // SAFETY: `ptr` is a fresh block of `size` bytes.
            unsafe { std::ptr::write_bytes(ptr, i as u8, size) };
            blocks.push((ptr, size, i as u8));
        }
        let mut spans: Vec<(usize, usize)> = blocks
            .iter()
            .map(|&(p, s, _)| (p as usize, p as usize + s))
            .collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "no overlap");
        for (ptr, size, byte) in blocks {
            // SAFETY: the block is live and `size` bytes long.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, size) };
            assert!(bytes.iter().all(|&b| b == byte));
        }
    }

    #[test]
    fn the_latest_block_grows_in_place_and_others_move_with_their_bytes() {
        let arena = Arena::new();
        let layout = Layout::from_size_align(8, 1).unwrap();
        let first = alloc(&arena, 8, 1);
        // SAFETY: live blocks of the sizes given, resized through the arena.
        unsafe {
            std::ptr::copy_nonoverlapping(b"abcdefgh".as_ptr(), first, 8);
            let grown = arena.realloc(first, layout, 64);
            assert_eq!(grown, first, "the latest block grows in place");
            let second = alloc(&arena, 8, 1);
            let moved = arena.realloc(grown, Layout::from_size_align(64, 1).unwrap(), 128);
            assert_ne!(moved, grown, "a block that is not the latest moves");
            assert_eq!(std::slice::from_raw_parts(moved, 8), b"abcdefgh");
            let shrunk = arena.realloc(second, layout, 4);
            assert_eq!(shrunk, second, "shrinking never moves");
        }
    }

    #[test]
    fn freeing_the_latest_block_gives_its_room_back() {
        let arena = Arena::new();
        let a = alloc(&arena, 100, 8);
        // SAFETY: `a` is the latest block, freed once.
        unsafe { arena.dealloc(a, Layout::from_size_align(100, 8).unwrap()) };
        assert_eq!(alloc(&arena, 50, 8), a, "the room is reused");
        let b = alloc(&arena, 10, 1);
        let c = alloc(&arena, 10, 1);
        // SAFETY: `b` is live; it is not the latest block, so its room stays taken.
        unsafe { arena.dealloc(b, Layout::from_size_align(10, 1).unwrap()) };
        assert!(alloc(&arena, 10, 1) as usize >= c as usize + 10);
    }
}
