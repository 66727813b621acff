//! Handles to backend memory. A handle names a contiguous run of elements inside one buffer.

/// A contiguous run of `len` f32 elements starting at `offset` inside backend buffer `buffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tensor {
    pub buffer: u32,
    pub offset: usize,
    pub len: usize,
}

/// A contiguous run of `len` i32 indices inside backend index buffer `buffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Indices {
    pub buffer: u32,
    pub offset: usize,
    pub len: usize,
}

impl Tensor {
    /// The sub-view `[start, start + len)` of this view.
    pub fn slice(self, start: usize, len: usize) -> Tensor {
        assert!(start + len <= self.len, "slice {start}+{len} outside a view of {}", self.len);
        Tensor { buffer: self.buffer, offset: self.offset + start, len }
    }

    /// True when the two views share at least one element.
    pub fn overlaps(self, other: Tensor) -> bool {
        self.buffer == other.buffer
            && self.offset < other.offset + other.len
            && other.offset < self.offset + self.len
    }
}

impl Indices {
    pub fn slice(self, start: usize, len: usize) -> Indices {
        assert!(start + len <= self.len, "slice {start}+{len} outside indices of {}", self.len);
        Indices { buffer: self.buffer, offset: self.offset + start, len }
    }
}
