{
  "targets": [
    {
      "target_name": "tsrun_native",
      "sources": [
        "native/addon.cc",
        "native/channel.cc",
        "native/errors.cc",
        "native/file_map.cc",
        "native/lock.cc",
        "native/mount.cc",
        "native/netns.cc",
        "native/pidfd.cc",
        "native/plan_exec.cc",
        "native/plan_prepare.cc",
        "native/pty.cc",
        "native/spawn.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-fno-strict-aliasing"
      ],
      "cflags_cc!": [
        "-std=gnu++17",
        "-std=gnu++20"
      ],
      "defines": [
        "_GNU_SOURCE",
        "NAPI_VERSION=8"
      ]
    },
    {
      "target_name": "tsrun-monitor",
      "type": "executable",
      "sources": [
        "native/attach_server.cc",
        "native/monitor.cc",
        "native/plan_exec.cc",
        "native/plan_prepare.cc"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-fno-strict-aliasing",
        "-Os"
      ],
      "cflags_cc!": [
        "-std=gnu++17",
        "-std=gnu++20",
        "-fno-exceptions"
      ],
      "ldflags": [
        "-static"
      ],
      "defines": [
        "_GNU_SOURCE"
      ]
    }
  ]
}
