//! The COM side of an automation object: a hand-written `IDispatch`
//! vtable over an [`Automation`] object, VARIANTs in and out, and errors
//! as `DISP_E_EXCEPTION` with an `EXCEPINFO` (source "SmtpBridge", the
//! description VBA shows as `Err.Description`). No unwind leaves a COM
//! method: a panic is `E_UNEXPECTED`. Every pointer from the caller is
//! checked and converted here; `automation.rs` and the objects never see
//! one.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use windows_sys::core::{IID_IUnknown, BSTR, GUID, HRESULT, PCWSTR};
use windows_sys::Win32::Foundation::{
    SysAllocStringLen, SysStringLen, DISP_E_BADINDEX, DISP_E_EXCEPTION, DISP_E_PARAMNOTFOUND, DISP_E_TYPEMISMATCH,
    DISP_E_UNKNOWNNAME, E_NOINTERFACE, E_POINTER, E_UNEXPECTED, S_OK,
};
use windows_sys::Win32::System::Com::{DISPATCH_PROPERTYPUT, DISPATCH_PROPERTYPUTREF, DISPPARAMS, EXCEPINFO};
use windows_sys::Win32::System::Ole::DISPID_PROPERTYPUT;
use windows_sys::Win32::System::Variant::{
    VariantChangeType, VariantClear, VariantCopyInd, VARIANT, VT_BOOL, VT_BSTR, VT_CY, VT_DECIMAL, VT_DISPATCH,
    VT_EMPTY, VT_ERROR, VT_I1, VT_I2, VT_I4, VT_I8, VT_INT, VT_NULL, VT_R4, VT_R8, VT_UI1, VT_UI2, VT_UI4, VT_UI8,
    VT_UINT, VT_UNKNOWN,
};

use crate::automation::{self, Automation, Call, Fault, Value, DISPID_NEWENUM};
use crate::enumerator::new_enumerator;

pub const IID_IDISPATCH: GUID = GUID::from_u128(0x00020400_0000_0000_c000_000000000046);
const DISPID_UNKNOWN: i32 = -1;

pub fn same_guid(a: &GUID, b: &GUID) -> bool {
    (a.data1, a.data2, a.data3, a.data4) == (b.data1, b.data2, b.data3, b.data4)
}

/// Runs a COM method; a panic is `E_UNEXPECTED`.
pub fn boundary(method: impl FnOnce() -> HRESULT) -> HRESULT {
    catch_unwind(AssertUnwindSafe(method)).unwrap_or(E_UNEXPECTED)
}

type This = *mut Object;

#[repr(C)]
struct DispatchVtbl {
    query_interface: unsafe extern "system" fn(This, *const GUID, *mut *mut c_void) -> HRESULT,
    add_ref: unsafe extern "system" fn(This) -> u32,
    release: unsafe extern "system" fn(This) -> u32,
    get_type_info_count: unsafe extern "system" fn(This, *mut u32) -> HRESULT,
    get_type_info: unsafe extern "system" fn(This, u32, u32, *mut *mut c_void) -> HRESULT,
    get_ids_of_names: unsafe extern "system" fn(This, *const GUID, *const PCWSTR, u32, u32, *mut i32) -> HRESULT,
    #[allow(clippy::type_complexity)]
    invoke: unsafe extern "system" fn(
        This,
        i32,
        *const GUID,
        u32,
        u16,
        *mut DISPPARAMS,
        *mut VARIANT,
        *mut EXCEPINFO,
        *mut u32,
    ) -> HRESULT,
}

static VTBL: DispatchVtbl =
    DispatchVtbl { query_interface, add_ref, release, get_type_info_count, get_type_info, get_ids_of_names, invoke };

/// A COM object: the vtable pointer first, as COM expects.
#[repr(C)]
pub struct Object {
    vtbl: &'static DispatchVtbl,
    refs: AtomicU32,
    inner: Arc<dyn Automation>,
}

/// A new `IDispatch` pointer for `inner`, with one reference the caller
/// owns (freed by its last `Release`).
pub fn new_dispatch(inner: Arc<dyn Automation>) -> *mut c_void {
    Box::into_raw(Box::new(Object { vtbl: &VTBL, refs: AtomicU32::new(1), inner })).cast()
}

/// The object's `IDispatch` for `iid` (IUnknown or IDispatch), with a
/// reference, in `out`.
///
/// # Safety
/// `this` is a live object of [`new_dispatch`]; `iid` and `out` are NULL or valid.
pub unsafe extern "system" fn query_interface(this: This, iid: *const GUID, out: *mut *mut c_void) -> HRESULT {
    if out.is_null() {
        return E_POINTER;
    }
    // SAFETY: checked non-NULL; the caller passes a writable pointer.
    unsafe { *out = std::ptr::null_mut() };
    // SAFETY: the caller passes NULL or an IID.
    let Some(iid) = (unsafe { iid.as_ref() }) else { return E_POINTER };
    if !same_guid(iid, &IID_IUnknown) && !same_guid(iid, &IID_IDISPATCH) {
        return E_NOINTERFACE;
    }
    // SAFETY: `this` is live (COM's contract).
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

/// # Safety
/// `this` is a live object of [`new_dispatch`] whose reference the caller gives up.
pub unsafe extern "system" fn release(this: This) -> u32 {
    // SAFETY: `this` is live until its count reaches 0.
    let left = unsafe { (*this).refs.fetch_sub(1, Ordering::AcqRel) } - 1;
    if left == 0 {
        // SAFETY: made by Box::into_raw in new_dispatch; no reference is left.
        let object = unsafe { Box::from_raw(this) };
        // Dropping the last object of an Application closes the client:
        // no unwind may leave Release.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(object)));
    }
    left
}

unsafe extern "system" fn get_type_info_count(_this: This, count: *mut u32) -> HRESULT {
    if count.is_null() {
        return E_POINTER;
    }
    // SAFETY: checked non-NULL. There is no type library (late binding only).
    unsafe { *count = 0 };
    S_OK
}

unsafe extern "system" fn get_type_info(_this: This, _index: u32, _lcid: u32, info: *mut *mut c_void) -> HRESULT {
    if !info.is_null() {
        // SAFETY: checked non-NULL.
        unsafe { *info = std::ptr::null_mut() };
    }
    DISP_E_BADINDEX
}

/// # Safety
/// `text` is NULL or a NUL-terminated UTF-16 string.
unsafe fn wide_text(text: PCWSTR) -> Option<String> {
    if text.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: NUL-terminated, as the caller promises.
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: `len` units before the NUL are readable.
    Some(String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) }))
}

unsafe extern "system" fn get_ids_of_names(
    this: This,
    _iid: *const GUID,
    names: *const PCWSTR,
    count: u32,
    _lcid: u32,
    ids: *mut i32,
) -> HRESULT {
    boundary(|| {
        if names.is_null() || ids.is_null() || count == 0 {
            return E_POINTER;
        }
        // SAFETY: the caller passes `count` names and room for `count` ids.
        let (names, ids) = unsafe {
            (std::slice::from_raw_parts(names, count as usize), std::slice::from_raw_parts_mut(ids, count as usize))
        };
        // SAFETY: `this` is live (COM's contract).
        let class = unsafe { (*this).inner.class() };
        // SAFETY: the names are NUL-terminated UTF-16 strings.
        let mut names = names.iter().map(|&n| unsafe { wide_text(n) }.unwrap_or_default());
        let member = class.dispid(&names.next().unwrap_or_default());
        ids[0] = member.unwrap_or(DISPID_UNKNOWN);
        let mut answer = if member.is_some() { S_OK } else { DISP_E_UNKNOWNNAME };
        for (id, name) in ids[1..].iter_mut().zip(names) {
            *id = member.and_then(|m| class.param(m, &name)).unwrap_or(DISPID_UNKNOWN);
            if *id == DISPID_UNKNOWN {
                answer = DISP_E_UNKNOWNNAME;
            }
        }
        answer
    })
}

#[allow(clippy::too_many_arguments)]
unsafe extern "system" fn invoke(
    this: This,
    dispid: i32,
    _iid: *const GUID,
    _lcid: u32,
    flags: u16,
    params: *mut DISPPARAMS,
    result: *mut VARIANT,
    exception: *mut EXCEPINFO,
    arg_error: *mut u32,
) -> HRESULT {
    boundary(|| {
        // SAFETY: the caller passes NULL or valid DISPPARAMS for the call.
        let (args, named) = match unsafe { params.as_ref() } {
            Some(p) => unsafe { (slice(p.rgvarg, p.cArgs), slice(p.rgdispidNamedArgs, p.cNamedArgs)) },
            None => (&[][..], &[][..]),
        };
        let (call, values) = match arguments(args, named, flags & (DISPATCH_PROPERTYPUT | DISPATCH_PROPERTYPUTREF) != 0)
        {
            Ok(read) => read,
            Err((code, index)) => {
                if !arg_error.is_null() {
                    // SAFETY: checked non-NULL.
                    unsafe { *arg_error = index };
                }
                return code;
            }
        };
        // SAFETY: `this` is live (COM's contract).
        let object = unsafe { &*this }.inner.clone();
        let answer = if dispid == DISPID_NEWENUM {
            enumerate(&*object)
        } else {
            automation::invoke(&*object, dispid, call, values).map(Answer::Value)
        };
        match answer {
            Ok(Answer::Value(value)) => {
                if !result.is_null() {
                    // SAFETY: checked non-NULL; the caller passes an initialised VARIANT.
                    unsafe { put_variant(&mut *result, value) };
                }
                S_OK
            }
            Ok(Answer::Enumerator(items)) => {
                if result.is_null() {
                    return E_POINTER;
                }
                // SAFETY: checked non-NULL; the caller passes an initialised VARIANT.
                unsafe {
                    VariantClear(result);
                    let inner = &mut (*result).Anonymous.Anonymous;
                    inner.vt = VT_UNKNOWN;
                    inner.Anonymous.punkVal = new_enumerator(items, 0);
                }
                S_OK
            }
            Err(fault) => {
                if !exception.is_null() {
                    // SAFETY: checked non-NULL; the caller passes a writable EXCEPINFO.
                    unsafe { *exception = exception_info(&fault) };
                }
                DISP_E_EXCEPTION
            }
        }
    })
}

/// What a call gives back: a value, or for `_NewEnum` the items to enumerate.
enum Answer {
    Value(Value),
    Enumerator(Arc<Vec<Value>>),
}

/// `_NewEnum` of a collection (`For Each`).
fn enumerate(object: &dyn Automation) -> Result<Answer, Fault> {
    match object.items() {
        Some(items) => Ok(Answer::Enumerator(Arc::new(items))),
        None => Err(Fault(format!("For Each over {} is not supported by smtpbridge", object.class().name))),
    }
}

/// # Safety
/// `items` is NULL or points to `count` items that outlive the call.
unsafe fn slice<'a, T>(items: *const T, count: u32) -> &'a [T] {
    if items.is_null() || count == 0 {
        &[]
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(items, count as usize) }
    }
}

/// The call and its arguments by position: `args` come last-first, the
/// first `named.len()` of them named (the value of a property put is
/// named DISPID_PROPERTYPUT). An argument that cannot be read is its
/// error code and index (as `puArgErr` reports it).
fn arguments(args: &[VARIANT], named: &[i32], put: bool) -> Result<(Call, Vec<Value>), (HRESULT, u32)> {
    let positional = args.len().saturating_sub(named.len());
    let mut values = vec![Value::Empty; positional];
    let mut assigned = None;
    for (index, variant) in args.iter().enumerate() {
        let value = value(variant).ok_or((DISP_E_TYPEMISMATCH, index as u32))?;
        match named.get(index) {
            Some(&DISPID_PROPERTYPUT) => assigned = Some(value),
            Some(&position) => {
                let position = usize::try_from(position).map_err(|_| (DISP_E_PARAMNOTFOUND, index as u32))?;
                if values.len() <= position {
                    values.resize(position + 1, Value::Empty);
                }
                values[position] = value;
            }
            None => values[args.len() - 1 - index] = value,
        }
    }
    let call = match (put, assigned) {
        (true, Some(value)) => Call::Put(value),
        (true, None) => return Err((DISP_E_PARAMNOTFOUND, 0)),
        (false, _) => Call::Get,
    };
    Ok((call, values))
}

/// A VARIANT argument as a value (through VT_BYREF, as VB6 passes
/// variables); a missing optional argument is Empty; an object is None.
fn value(variant: &VARIANT) -> Option<Value> {
    let mut plain = VARIANT::default();
    // SAFETY: both are valid VARIANTs; `plain` is cleared below.
    if unsafe { VariantCopyInd(&mut plain, variant) } != S_OK {
        return None;
    }
    // SAFETY: reading the union member the type names.
    let read = unsafe {
        let inner = &plain.Anonymous.Anonymous;
        match inner.vt {
            VT_EMPTY | VT_NULL => Some(Value::Empty),
            VT_ERROR if inner.Anonymous.scode == DISP_E_PARAMNOTFOUND => Some(Value::Empty),
            VT_BOOL => Some(Value::Bool(inner.Anonymous.boolVal != 0)),
            VT_BSTR => Some(Value::Text(bstr_text(inner.Anonymous.bstrVal))),
            VT_DISPATCH | VT_ERROR => None,
            VT_I1 | VT_I2 | VT_I4 | VT_I8 | VT_UI1 | VT_UI2 | VT_UI4 | VT_UI8 | VT_INT | VT_UINT | VT_R4 | VT_R8
            | VT_DECIMAL | VT_CY => convert(&plain, VT_I4).map(|v| Value::Int(v.Anonymous.Anonymous.Anonymous.lVal)),
            _ => convert(&plain, VT_BSTR).map(|mut v| {
                let text = bstr_text(v.Anonymous.Anonymous.Anonymous.bstrVal);
                VariantClear(&mut v);
                Value::Text(text)
            }),
        }
    };
    // SAFETY: `plain` was initialised by VariantCopyInd.
    unsafe { VariantClear(&mut plain) };
    read
}

/// # Safety
/// `from` is a valid VARIANT.
unsafe fn convert(from: &VARIANT, vt: u16) -> Option<VARIANT> {
    let mut to = VARIANT::default();
    // SAFETY: as the caller promises; `to` is empty.
    (unsafe { VariantChangeType(&mut to, from, 0, vt) } == S_OK).then_some(to)
}

/// # Safety
/// `text` is NULL or a BSTR.
unsafe fn bstr_text(text: BSTR) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: a BSTR holds SysStringLen units.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, SysStringLen(text) as usize) })
}

fn bstr(text: &str) -> BSTR {
    let units: Vec<u16> = text.encode_utf16().collect();
    // SAFETY: `units` holds `len` UTF-16 units; the BSTR is a copy the receiver frees.
    unsafe { SysAllocStringLen(units.as_ptr(), units.len() as u32) }
}

/// Writes `value` into a result VARIANT (clearing what was there).
///
/// # Safety
/// `out` is an initialised VARIANT the caller owns.
pub unsafe fn put_variant(out: &mut VARIANT, value: Value) {
    // SAFETY: as the caller promises; then the VARIANT is empty and
    // written as the type it is given.
    unsafe { VariantClear(out) };
    let inner = unsafe { &mut out.Anonymous.Anonymous };
    match value {
        Value::Empty => inner.vt = VT_EMPTY,
        Value::Bool(b) => {
            inner.vt = VT_BOOL;
            inner.Anonymous.boolVal = if b { -1 } else { 0 };
        }
        Value::Int(i) => {
            inner.vt = VT_I4;
            inner.Anonymous.lVal = i;
        }
        Value::Text(text) => {
            inner.vt = VT_BSTR;
            inner.Anonymous.bstrVal = bstr(&text);
        }
        Value::Object(object) => {
            inner.vt = VT_DISPATCH;
            inner.Anonymous.pdispVal = new_dispatch(object);
        }
    }
}

/// The EXCEPINFO of a fault: source "SmtpBridge", the fault's text, and
/// `DISP_E_EXCEPTION` as the code scripts see in `Err.Number`.
fn exception_info(fault: &Fault) -> EXCEPINFO {
    EXCEPINFO {
        bstrSource: bstr("SmtpBridge"),
        bstrDescription: bstr(&fault.0),
        scode: DISP_E_EXCEPTION,
        ..EXCEPINFO::default()
    }
}
