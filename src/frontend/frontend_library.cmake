# The guest ggml backend: libggml-virtgpu.so in the bin folder, where ggml_backend_load_all()
# looks for it by name. Only ggml_backend_init and ggml_backend_score are exported.

# Guest-side logic that needs no host (graph encoding, caches, fake addresses): also linked
# into the unit tests.
set(_core_srcs vgpu_fake_addr.c vgpu_graph.c vgpu_outputs.c vgpu_policy.c vgpu_ptrmap.c vgpu_sig_cache.c vgpu_wire.c)
list(TRANSFORM _core_srcs PREPEND "${CMAKE_CURRENT_LIST_DIR}/")
add_library(ggml_virtgpu_core STATIC ${_core_srcs})
target_include_directories(ggml_virtgpu_core PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(ggml_virtgpu_core PUBLIC apir_protocol ggml_base Threads::Threads PRIVATE apir_common)

set(_ggml_srcs vgpu_reg.c vgpu_device.c vgpu_buft.c vgpu_listing.c vgpu_device_cache.c vgpu_buffer.c vgpu_host_buffer.c vgpu_backend.c)
list(TRANSFORM _ggml_srcs PREPEND "${CMAKE_CURRENT_LIST_DIR}/")
add_library(ggml-virtgpu SHARED ${_ggml_srcs})
set_target_properties(ggml-virtgpu PROPERTIES OUTPUT_NAME ggml-virtgpu C_VISIBILITY_PRESET hidden)
target_link_libraries(ggml-virtgpu PRIVATE ggml_virtgpu_core apir_guest_client apir_common ggml_base)
# the static libraries inside are not built hidden: the version script hides them
target_link_options(ggml-virtgpu PRIVATE "-Wl,--version-script=${CMAKE_CURRENT_LIST_DIR}/ggml-virtgpu.map")
# every symbol resolved at link time, except under clang's sanitizers, whose runtime only the
# executable carries
if(NOT (APIR_SANITIZE AND CMAKE_C_COMPILER_ID MATCHES "Clang"))
    target_link_options(ggml-virtgpu PRIVATE -Wl,--no-undefined)
endif()
set_property(TARGET ggml-virtgpu APPEND PROPERTY LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/ggml-virtgpu.map)
