/* SmtpBridge.Application without registration (ABI.md §19): a program whose
 * application manifest (regfree.exe.manifest beside it) depends on the
 * assembly smtpbridge.com (smtpbridge.com.manifest and smtpbridge_com.dll
 * beside it, as the release folder ships them), run by
 * scripts/windows/test.sh while the COM DLL is registered nowhere.
 *
 *   regfree.exe send ARCH
 *       CLSIDFromProgID("SmtpBridge.Application") and CoCreateInstance
 *       (of its CLSID and of the manifest's); IDispatch: CreateItem(0), To,
 *       Subject, Body, Send, EntryID; the DLL that served it is the one
 *       beside the program.
 *   unregistered.exe absent
 *       (the same program under another name, without a manifest)
 *       CLSIDFromProgID fails with CO_E_CLASSSTRING and CoCreateInstance
 *       with REGDB_E_CLASSNOTREG: the registry knows no SmtpBridge.Application.
 * Exits 0 when every check passed, 1 naming the first that did not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>
#include <windows.h>
#include <ole2.h>

/* {B45463DD-655F-4D18-9AD5-55B0E786CABE} */
static const CLSID clsid_application = {0xb45463dd, 0x655f, 0x4d18, {0x9a, 0xd5, 0x55, 0xb0, 0xe7, 0x86, 0xca, 0xbe}};

static void fail(const char *what, HRESULT hr) {
    printf("FAIL: %s: 0x%08lx\n", what, (unsigned long)hr);
    exit(1);
}

/* obj.name(args) as method, property get or put, with COM's argument order
 * (last argument first). A COM exception prints its description. */
static VARIANT invoke(IDispatch *obj, const wchar_t *name, WORD kind, VARIANT *args, UINT count) {
    DISPID id;
    LPOLESTR names[1] = {(LPOLESTR)name};
    HRESULT hr = obj->lpVtbl->GetIDsOfNames(obj, &IID_NULL, names, 1, LOCALE_USER_DEFAULT, &id);
    if (FAILED(hr)) {
        printf("FAIL: GetIDsOfNames(%ls): 0x%08lx\n", name, (unsigned long)hr);
        exit(1);
    }
    DISPID put = DISPID_PROPERTYPUT;
    DISPPARAMS params = {args, kind == DISPATCH_PROPERTYPUT ? &put : NULL, count,
                         kind == DISPATCH_PROPERTYPUT ? 1 : 0};
    VARIANT result;
    VariantInit(&result);
    EXCEPINFO error;
    memset(&error, 0, sizeof error);
    UINT bad_arg = 0;
    hr = obj->lpVtbl->Invoke(obj, id, &IID_NULL, LOCALE_USER_DEFAULT, kind, &params, &result, &error, &bad_arg);
    if (FAILED(hr)) {
        printf("FAIL: %ls: 0x%08lx %ls\n", name, (unsigned long)hr, error.bstrDescription ? error.bstrDescription : L"");
        exit(1);
    }
    return result;
}

static void put_text(IDispatch *obj, const wchar_t *name, const wchar_t *text) {
    VARIANT value;
    value.vt = VT_BSTR;
    value.bstrVal = SysAllocString(text);
    invoke(obj, name, DISPATCH_PROPERTYPUT, &value, 1);
    SysFreeString(value.bstrVal);
}

/* The folder of a module's file, with its final backslash. */
static void folder_of(HMODULE module, wchar_t *out, DWORD size) {
    DWORD len = GetModuleFileNameW(module, out, size);
    if (len == 0 || len >= size) fail("GetModuleFileNameW", HRESULT_FROM_WIN32(GetLastError()));
    wchar_t *slash = wcsrchr(out, L'\\');
    if (slash) slash[1] = 0;
}

static int run_send(const char *arch) {
    /* The ProgID gives the class's "configured CLSID" in the activation
     * context, which may be an alias of the manifest's: both create it. */
    CLSID clsid;
    HRESULT hr = CLSIDFromProgID(L"SmtpBridge.Application", &clsid);
    if (FAILED(hr)) fail("CLSIDFromProgID(SmtpBridge.Application) through the manifest", hr);
    IDispatch *app = NULL, *by_clsid = NULL;
    hr = CoCreateInstance(&clsid, NULL, CLSCTX_INPROC_SERVER, &IID_IDispatch, (void **)&app);
    if (FAILED(hr)) fail("CoCreateInstance(CLSIDFromProgID's CLSID) through the manifest", hr);
    hr = CoCreateInstance(&clsid_application, NULL, CLSCTX_INPROC_SERVER, &IID_IDispatch, (void **)&by_clsid);
    if (FAILED(hr)) fail("CoCreateInstance({B45463DD-655F-4D18-9AD5-55B0E786CABE}) through the manifest", hr);
    by_clsid->lpVtbl->Release(by_clsid);
    printf("ok: SmtpBridge.Application created through the manifest, by ProgID and by CLSID\n");

    wchar_t program[MAX_PATH], server[MAX_PATH];
    folder_of(NULL, program, MAX_PATH);
    HMODULE dll = GetModuleHandleW(L"smtpbridge_com.dll");
    if (!dll) fail("smtpbridge_com.dll is not loaded", E_UNEXPECTED);
    folder_of(dll, server, MAX_PATH);
    if (_wcsicmp(program, server) != 0) {
        printf("FAIL: smtpbridge_com.dll was loaded from %ls, not from the program's folder %ls\n", server, program);
        return 1;
    }
    printf("ok: CoCreateInstance loaded smtpbridge_com.dll from the program's folder %ls\n", server);

    VARIANT type;
    type.vt = VT_I4;
    type.lVal = 0; /* olMailItem */
    VARIANT item = invoke(app, L"CreateItem", DISPATCH_METHOD, &type, 1);
    if (item.vt != VT_DISPATCH || !item.pdispVal) fail("CreateItem(0) gave no object", E_UNEXPECTED);
    IDispatch *mail = item.pdispVal;
    char subject_utf8[100];
    wchar_t subject[100];
    snprintf(subject_utf8, sizeof subject_utf8, "COM registration-free (%s)", arch);
    MultiByteToWideChar(CP_UTF8, 0, subject_utf8, -1, subject, 100);
    put_text(mail, L"To", L"Hans Mueller <hans@example.com>");
    put_text(mail, L"Subject", subject);
    put_text(mail, L"Body", L"Sent through a manifest, with nothing registered.");
    invoke(mail, L"Send", DISPATCH_METHOD, NULL, 0);
    VARIANT id = invoke(mail, L"EntryID", DISPATCH_PROPERTYGET, NULL, 0);
    if (id.vt != VT_BSTR || SysStringLen(id.bstrVal) == 0) fail("EntryID after Send is empty", E_UNEXPECTED);
    printf("ok: MailItem.Send queued message %ls\n", id.bstrVal);
    VariantClear(&id);
    mail->lpVtbl->Release(mail);
    app->lpVtbl->Release(app);
    return 0;
}

static int run_absent(void) {
    CLSID clsid;
    HRESULT hr = CLSIDFromProgID(L"SmtpBridge.Application", &clsid);
    if (hr != CO_E_CLASSSTRING) fail("CLSIDFromProgID without a manifest: expected CO_E_CLASSSTRING", hr);
    IDispatch *app = NULL;
    hr = CoCreateInstance(&clsid_application, NULL, CLSCTX_INPROC_SERVER, &IID_IDispatch, (void **)&app);
    if (hr != REGDB_E_CLASSNOTREG) fail("CoCreateInstance without a manifest: expected REGDB_E_CLASSNOTREG", hr);
    printf("ok: without the manifest SmtpBridge.Application is not registered (CO_E_CLASSSTRING, REGDB_E_CLASSNOTREG)\n");
    return 0;
}

int main(int argc, char **argv) {
    HRESULT hr = CoInitializeEx(NULL, COINIT_APARTMENTTHREADED);
    if (FAILED(hr)) fail("CoInitializeEx", hr);
    int rc = 2;
    if (argc == 3 && strcmp(argv[1], "send") == 0) {
        rc = run_send(argv[2]);
    } else if (argc == 2 && strcmp(argv[1], "absent") == 0) {
        rc = run_absent();
    } else {
        fprintf(stderr, "usage: regfree send ARCH | absent\n");
    }
    CoUninitialize();
    return rc;
}
