/* Files served by mien serve, embedded at build time: the assembler's .incbin copies them
 * into .rodata, so the binary needs no file at run time. Paths are relative to the
 * repository root, where make runs the compiler; the Makefile lists them as prerequisites of
 * this object so that editing them rebuilds it. Each is followed by a NUL byte. */
#include "server/srv_int.h"

#define SRV_INCBIN(sym, path)                                                                 \
    __asm__(".section .rodata\n"                                                              \
            ".global " #sym "\n"                                                              \
            ".type " #sym ", @object\n"                                                       \
            ".balign 16\n" #sym ":\n"                                                         \
            ".incbin \"" path "\"\n"                                                          \
            ".global " #sym "_end\n" #sym "_end:\n"                                           \
            ".byte 0\n"                                                                       \
            ".previous\n")

SRV_INCBIN(srv_asset_openapi, "src/server/openapi.json");
SRV_INCBIN(srv_asset_index, "src/server/web/index.html");
