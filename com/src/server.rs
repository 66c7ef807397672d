//! The in-process server's exports: `DllGetClassObject` hands out the
//! class factory of `SmtpBridge.Application`; `DllCanUnloadNow` keeps the
//! DLL loaded (the library keeps per-process state: the client, its
//! delivery thread, the log); registration is in `register.rs`.

use std::ffi::c_void;
use std::sync::Arc;
use windows_sys::core::{IID_IUnknown, GUID, HRESULT};
use windows_sys::Win32::Foundation::{
    CLASS_E_CLASSNOTAVAILABLE, CLASS_E_NOAGGREGATION, E_NOINTERFACE, E_POINTER, S_FALSE, S_OK,
};

use crate::dispatch::{boundary, new_dispatch, query_interface, release, same_guid};
use crate::objects::Application;

/// The CLSID of `SmtpBridge.Application` (fixed for good: hosts and
/// manifests name it). {B45463DD-655F-4D18-9AD5-55B0E786CABE}
pub const CLSID: GUID = GUID::from_u128(0xb45463dd_655f_4d18_9ad5_55b0e786cabe);
const IID_ICLASSFACTORY: GUID = GUID::from_u128(0x00000001_0000_0000_c000_000000000046);

type This = *const Factory;

#[repr(C)]
struct FactoryVtbl {
    query_interface: unsafe extern "system" fn(This, *const GUID, *mut *mut c_void) -> HRESULT,
    add_ref: unsafe extern "system" fn(This) -> u32,
    release: unsafe extern "system" fn(This) -> u32,
    create_instance: unsafe extern "system" fn(This, *mut c_void, *const GUID, *mut *mut c_void) -> HRESULT,
    lock_server: unsafe extern "system" fn(This, i32) -> HRESULT,
}

/// The one class factory: static, so its reference count is not kept.
#[repr(C)]
struct Factory {
    vtbl: &'static FactoryVtbl,
}

static FACTORY: Factory = Factory {
    vtbl: &FactoryVtbl {
        query_interface: factory_query_interface,
        add_ref: factory_count,
        release: factory_count,
        create_instance,
        lock_server,
    },
};

unsafe extern "system" fn factory_query_interface(this: This, iid: *const GUID, out: *mut *mut c_void) -> HRESULT {
    if out.is_null() || iid.is_null() {
        return E_POINTER;
    }
    // SAFETY: checked non-NULL.
    let iid = unsafe { &*iid };
    let known = same_guid(iid, &IID_IUnknown) || same_guid(iid, &IID_ICLASSFACTORY);
    // SAFETY: checked non-NULL; the caller passes a writable pointer.
    unsafe { *out = if known { this as *mut c_void } else { std::ptr::null_mut() } };
    if known {
        S_OK
    } else {
        E_NOINTERFACE
    }
}

unsafe extern "system" fn factory_count(_this: This) -> u32 {
    1
}

unsafe extern "system" fn create_instance(
    _this: This,
    outer: *mut c_void,
    iid: *const GUID,
    out: *mut *mut c_void,
) -> HRESULT {
    boundary(|| {
        if out.is_null() {
            return E_POINTER;
        }
        // SAFETY: checked non-NULL.
        unsafe { *out = std::ptr::null_mut() };
        if !outer.is_null() {
            return CLASS_E_NOAGGREGATION;
        }
        let object = new_dispatch(Arc::new(Application::default()));
        // SAFETY: a live object with one reference, given up after the
        // QueryInterface (which takes its own, or fails and frees it).
        unsafe {
            let answer = query_interface(object.cast(), iid, out);
            release(object.cast());
            answer
        }
    })
}

unsafe extern "system" fn lock_server(_this: This, _lock: i32) -> HRESULT {
    S_OK
}

/// # Safety
/// COM's contract: valid GUID pointers and a writable `out`.
#[no_mangle]
pub unsafe extern "system" fn DllGetClassObject(
    clsid: *const GUID,
    iid: *const GUID,
    out: *mut *mut c_void,
) -> HRESULT {
    boundary(|| {
        if out.is_null() || clsid.is_null() {
            return E_POINTER;
        }
        // SAFETY: checked non-NULL.
        if !same_guid(unsafe { &*clsid }, &CLSID) {
            // SAFETY: checked non-NULL.
            unsafe { *out = std::ptr::null_mut() };
            return CLASS_E_CLASSNOTAVAILABLE;
        }
        // SAFETY: as the caller promises.
        unsafe { factory_query_interface(&FACTORY, iid, out) }
    })
}

/// Never: the library's per-process state (client, delivery thread, log)
/// lives until the process ends.
#[no_mangle]
pub extern "system" fn DllCanUnloadNow() -> HRESULT {
    S_FALSE
}
