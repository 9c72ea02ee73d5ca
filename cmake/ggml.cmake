# The pinned ggml release: prebuilt libraries from npm, headers extracted into the build tree.
set(GGML_DEPS_CACHE "${PROJECT_SOURCE_DIR}/.deps" CACHE PATH "where the npm tarballs are kept")
set(GGML_ROOT "${CMAKE_BINARY_DIR}/ggml-v0.5.0")
if(NOT EXISTS "${GGML_ROOT}/.done-2") # the marker names the header set (scripts/fetch-ggml.sh)
    message(STATUS "Fetching ggml v0.5.0 (npm) into ${GGML_ROOT}")
    execute_process(
        COMMAND bash "${PROJECT_SOURCE_DIR}/scripts/fetch-ggml.sh" "${GGML_DEPS_CACHE}" "${GGML_ROOT}"
        RESULT_VARIABLE _fetch_rc)
    if(NOT _fetch_rc EQUAL 0)
        message(FATAL_ERROR "could not fetch ggml v0.5.0 from npm: run scripts/install-deps.sh, check npm can reach its registry")
    endif()
endif()
set(GGML_INCLUDE_DIR "${GGML_ROOT}/include")
set(GGML_LIB_DIR "${GGML_ROOT}/lib")

add_library(ggml_base SHARED IMPORTED GLOBAL)
set_target_properties(ggml_base PROPERTIES
    IMPORTED_LOCATION "${GGML_LIB_DIR}/libggml-base.so"
    IMPORTED_NO_SONAME FALSE
    INTERFACE_INCLUDE_DIRECTORIES "${GGML_INCLUDE_DIR}")
add_library(ggml_reg SHARED IMPORTED GLOBAL)   # libggml: backend registry, ggml_backend_load_all
set_target_properties(ggml_reg PROPERTIES
    IMPORTED_LOCATION "${GGML_LIB_DIR}/libggml.v0.5.0.so"
    INTERFACE_INCLUDE_DIRECTORIES "${GGML_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES ggml_base)
add_library(llama SHARED IMPORTED GLOBAL)
set_target_properties(llama PROPERTIES
    IMPORTED_LOCATION "${GGML_LIB_DIR}/libllama.v0.5.0.so"
    INTERFACE_INCLUDE_DIRECTORIES "${GGML_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES ggml_reg)
