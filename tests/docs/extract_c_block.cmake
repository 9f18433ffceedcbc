# Writes the one ```c fenced block of a Markdown file to a C source, preceded by a #line
# directive so that compiler errors point into the Markdown file.
#   cmake -DIN=doc.md -DOUT=example.c -P extract_c_block.cmake
# Fails when the file holds no ```c block or more than one: the doc promises exactly one
# complete program. Snippets fenced as ```c fragment (still highlighted as C) are left alone.
file(READ "${IN}" md)
set(open "\n```c\n")
string(FIND "${md}" "${open}" start)
if(start EQUAL -1)
  message(FATAL_ERROR "${IN}: no ```c fenced block")
endif()
math(EXPR body "${start} + 6")
string(SUBSTRING "${md}" ${body} -1 rest)
string(FIND "${rest}" "\n```" end)
if(end EQUAL -1)
  message(FATAL_ERROR "${IN}: the ```c block is not closed")
endif()
math(EXPR after "${end} + 4")
string(SUBSTRING "${rest}" ${after} -1 tail)
string(FIND "${tail}" "${open}" again)
if(NOT again EQUAL -1)
  message(FATAL_ERROR "${IN}: more than one ```c block; keep one complete program")
endif()
string(SUBSTRING "${rest}" 0 ${end} code)
# Line of the block's first line of code: newlines before it, plus one.
string(SUBSTRING "${md}" 0 ${body} head)
string(REGEX REPLACE "[^\n]" "" newlines "${head}")
string(LENGTH "${newlines}" line)
math(EXPR line "${line} + 1")
file(WRITE "${OUT}" "#line ${line} \"${IN}\"\n${code}\n")
