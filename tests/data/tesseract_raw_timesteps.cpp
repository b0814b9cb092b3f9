// Prints Tesseract's own LSTM output probabilities for line images (tests/test_tesseract_torch.py).
// Raw-line mode (--psm 13): the whole image is the line, so the network sees exactly the file.
// Output: "IMAGE <path>", then one line per timestep: "T" and tab-separated pairs of
// (hex-encoded UTF-8 choice, probability); the empty choice is Tesseract's null (the CTC blank).
#include <tesseract/baseapi.h>
#include <tesseract/resultiterator.h>
#include <leptonica/allheaders.h>
#include <cstdio>
#include <cstring>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s TESSDATA IMAGE...\n", argv[0]);
    return 2;
  }
  tesseract::TessBaseAPI api;
  if (api.Init(argv[1], "eng") != 0) return 1;
  api.SetPageSegMode(tesseract::PSM_RAW_LINE);
  api.SetVariable("lstm_choice_mode", "1");
  api.SetVariable("tessedit_do_invert", "0");
  for (int a = 2; a < argc; ++a) {
    Pix *pix = pixRead(argv[a]);
    if (pix == nullptr) return 1;
    api.SetImage(pix);
    api.Recognize(nullptr);
    printf("IMAGE %s\n", argv[a]);
    tesseract::ResultIterator *it = api.GetIterator();
    if (it != nullptr) {
      do {
        auto *steps = it->GetRawLSTMTimesteps();
        if (steps == nullptr) continue;
        for (auto &symbol : *steps) {
          for (auto &step : symbol) {
            printf("T");
            for (auto &choice : step) {
              printf("\t");
              for (const char *c = choice.first; c != nullptr && *c; ++c) printf("%02x", (unsigned char)*c);
              printf("\t%.7f", choice.second);
            }
            printf("\n");
          }
        }
      } while (it->Next(tesseract::RIL_WORD));
      delete it;
    }
    pixDestroy(&pix);
  }
  return 0;
}
