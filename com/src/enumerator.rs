//! `For Each` over a collection: `_NewEnum` (DISPID_NEWENUM) gives an
//! `IEnumVARIANT` over a snapshot of the collection's items, as VBA and
//! VBScript expect. Hand-written like `dispatch.rs`; no unwind leaves a
//! method.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use windows_sys::core::{IID_IUnknown, GUID, HRESULT};
use windows_sys::Win32::Foundation::{E_NOINTERFACE, E_POINTER, S_FALSE, S_OK};
use windows_sys::Win32::System::Variant::VARIANT;

use crate::automation::Value;
use crate::dispatch::{boundary, put_variant, same_guid};

const IID_IENUMVARIANT: GUID = GUID::from_u128(0x00020404_0000_0000_c000_000000000046);

type This = *mut Enumerator;

#[repr(C)]
struct EnumVtbl {
    query_interface: unsafe extern "system" fn(This, *const GUID, *mut *mut c_void) -> HRESULT,
    add_ref: unsafe extern "system" fn(This) -> u32,
    release: unsafe extern "system" fn(This) -> u32,
    next: unsafe extern "system" fn(This, u32, *mut VARIANT, *mut u32) -> HRESULT,
    skip: unsafe extern "system" fn(This, u32) -> HRESULT,
    reset: unsafe extern "system" fn(This) -> HRESULT,
    clone: unsafe extern "system" fn(This, *mut *mut c_void) -> HRESULT,
}

static VTBL: EnumVtbl = EnumVtbl { query_interface, add_ref, release, next, skip, reset, clone };

/// The vtable pointer first, as COM expects.
#[repr(C)]
pub struct Enumerator {
    vtbl: &'static EnumVtbl,
    refs: AtomicU32,
    items: Arc<Vec<Value>>,
    position: AtomicUsize,
}

/// A new `IEnumVARIANT` over `items` from `position`, with one reference
/// the caller owns.
pub fn new_enumerator(items: Arc<Vec<Value>>, position: usize) -> *mut c_void {
    let object = Enumerator { vtbl: &VTBL, refs: AtomicU32::new(1), items, position: AtomicUsize::new(position) };
    Box::into_raw(Box::new(object)).cast()
}

unsafe extern "system" fn query_interface(this: This, iid: *const GUID, out: *mut *mut c_void) -> HRESULT {
    if out.is_null() || iid.is_null() {
        return E_POINTER;
    }
    // SAFETY: checked non-NULL.
    let iid = unsafe { &*iid };
    if !same_guid(iid, &IID_IUnknown) && !same_guid(iid, &IID_IENUMVARIANT) {
        // SAFETY: checked non-NULL.
        unsafe { *out = std::ptr::null_mut() };
        return E_NOINTERFACE;
    }
    // SAFETY: `this` is live (COM's contract); `out` checked.
    unsafe {
        add_ref(this);
        *out = this.cast();
    }
    S_OK
}

unsafe extern "system" fn add_ref(this: This) -> u32 {
    // SAFETY: `this` is live (COM's contract).
    unsafe { (*this).refs.fetch_add(1, Ordering::Relaxed) + 1 }
}

unsafe extern "system" fn release(this: This) -> u32 {
    // SAFETY: `this` is live until its count reaches 0.
    let left = unsafe { (*this).refs.fetch_sub(1, Ordering::AcqRel) } - 1;
    if left == 0 {
        // SAFETY: made by Box::into_raw in new_enumerator; no reference is left.
        drop(unsafe { Box::from_raw(this) });
    }
    left
}

/// Hands out up to `count` items into `out`; S_FALSE when fewer were left.
unsafe extern "system" fn next(this: This, count: u32, out: *mut VARIANT, fetched: *mut u32) -> HRESULT {
    boundary(|| {
        if out.is_null() && count > 0 {
            return E_POINTER;
        }
        // SAFETY: `this` is live (COM's contract).
        let this = unsafe { &*this };
        let start = this.position.load(Ordering::Relaxed).min(this.items.len());
        let given = (count as usize).min(this.items.len() - start);
        for (n, item) in this.items[start..start + given].iter().enumerate() {
            // SAFETY: the caller passes room for `count` initialised VARIANTs.
            unsafe { put_variant(&mut *out.add(n), item.clone()) };
        }
        this.position.store(start + given, Ordering::Relaxed);
        if !fetched.is_null() {
            // SAFETY: checked non-NULL.
            unsafe { *fetched = given as u32 };
        }
        if given == count as usize {
            S_OK
        } else {
            S_FALSE
        }
    })
}

unsafe extern "system" fn skip(this: This, count: u32) -> HRESULT {
    // SAFETY: `this` is live (COM's contract).
    let this = unsafe { &*this };
    let start = this.position.load(Ordering::Relaxed);
    let end = start.saturating_add(count as usize);
    this.position.store(end.min(this.items.len()), Ordering::Relaxed);
    if end <= this.items.len() {
        S_OK
    } else {
        S_FALSE
    }
}

unsafe extern "system" fn reset(this: This) -> HRESULT {
    // SAFETY: `this` is live (COM's contract).
    unsafe { (*this).position.store(0, Ordering::Relaxed) };
    S_OK
}

unsafe extern "system" fn clone(this: This, out: *mut *mut c_void) -> HRESULT {
    if out.is_null() {
        return E_POINTER;
    }
    // SAFETY: `this` is live (COM's contract); `out` checked.
    unsafe {
        let this = &*this;
        *out = new_enumerator(this.items.clone(), this.position.load(Ordering::Relaxed));
    }
    S_OK
}
