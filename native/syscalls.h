// Raw system calls for the code that runs between clone and execve.
//
// glibc's wrappers set errno, which lives in the parent thread's TLS: a
// CLONE_VM child shares that memory, so it must not touch errno at all.
// These return the kernel's result: a negative errno on failure.
// See: man 2 syscall (the register conventions per architecture).
#pragma once

#include <sys/syscall.h>

namespace tsrun::sys {

#if defined(__x86_64__)
inline long raw6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  long ret;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
inline long raw6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  register long x8 __asm__("x8") = nr;
  register long x0 __asm__("x0") = a1;
  register long x1 __asm__("x1") = a2;
  register long x2 __asm__("x2") = a3;
  register long x3 __asm__("x3") = a4;
  register long x4 __asm__("x4") = a5;
  register long x5 __asm__("x5") = a6;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory", "cc");
  return x0;
}
#else
#error "tsrun supports x86_64 and aarch64"
#endif

template <typename A = long, typename B = long, typename C = long, typename D = long,
          typename E = long, typename F = long>
inline long call(long nr, A a = 0, B b = 0, C c = 0, D d = 0, E e = 0, F f = 0) {
  return raw6(nr, (long)a, (long)b, (long)c, (long)d, (long)e, (long)f);
}

[[noreturn]] inline void exit_group(int code) {
  for (;;) call(SYS_exit_group, code);
}

}  // namespace tsrun::sys
