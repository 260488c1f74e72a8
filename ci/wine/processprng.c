/*
 * bcryptprimitives.dll for Wine 8.0, which lacks it.
 *
 * Rust's standard library (1.78+) on Windows fills its random keys through
 * ProcessPrng from bcryptprimitives.dll. Wine 8.0 ships no such DLL, so every
 * Rust executable exits with code 53 before main. This one-function stand-in
 * fills the buffer through RtlGenRandom (exported by advapi32 as
 * SystemFunction036), which Wine implements. Used by .ci/run only: it is copied
 * into the Wine prefix's system32, never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000u ? 0x40000000u : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    /* Documented to always return TRUE on Windows. */
    return TRUE;
}
