# bpf_object(OUT_VAR SOURCE OUTPUT [COMPILER clang] [FLAGS ...] [DEPENDS ...]): compile a BPF C
# source with clang -target bpf, the way users build theirs (libbpf headers, -O2 -g for BTF and
# line info). FLAGS adds options such as -mcpu=v3; COMPILER picks another clang (clang-19 for v4).
find_program(BPF_CLANG NAMES clang clang-19 clang-16 clang-15 clang-14 REQUIRED)
function(bpf_object out_var src obj)
  cmake_parse_arguments(ARG "" "COMPILER" "FLAGS;DEPENDS" ${ARGN})
  if(NOT ARG_COMPILER)
    set(ARG_COMPILER ${BPF_CLANG})
  endif()
  get_filename_component(dir ${obj} DIRECTORY)
  get_filename_component(name ${obj} NAME)
  add_custom_command(OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${ARG_COMPILER} -O2 -g -target bpf ${ARG_FLAGS} -I/usr/include/${CMAKE_LIBRARY_ARCHITECTURE} -Wall -Werror -c ${src} -o ${obj}
    DEPENDS ${src} ${ARG_DEPENDS}
    COMMENT "BPF ${name}"
    VERBATIM)
  set(${out_var} ${obj} PARENT_SCOPE)
endfunction()
